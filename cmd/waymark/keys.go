package main

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/waymark-dev/waymark/ingest"
)

// loadKeys reads the keys of one kind from the file named by --FLAG (one "KEY NAME" or
// "KEY=NAME" per line, # starts a comment) and from --FLAG-inline ("KEY=NAME,KEY=NAME"). The name
// is what a key stands for, which errors call term: the SOURCE stored with a write key's events
// (Segment's word), the NAME of a read key's holder. from holds the flag each key was first given
// with, as ref names it (flagSet.ref). Errors name the flag so too, and the file's line.
func loadKeys(ref func(flag string) string, flag, term, path, inline string) (keys, from map[string]string, err error) {
	keys, from = map[string]string{}, map[string]string{}
	add := func(given, where, entry string) error {
		key, name, ok := strings.Cut(entry, "=")
		if !ok {
			f := strings.Fields(entry)
			if len(f) == 2 {
				key, name, ok = f[0], f[1], true
			}
		}
		key, name = strings.TrimSpace(key), strings.TrimSpace(name)
		if !ok || key == "" || name == "" {
			return fmt.Errorf("%s: want KEY=%s or KEY %s, got %s", where, term, term, quoteValue(entry))
		}
		if prev, dup := keys[key]; dup && prev != name {
			return fmt.Errorf("%s: key given twice, for %q and %q", where, prev, name)
		}
		keys[key] = name
		if from[key] == "" {
			from[key] = given
		}
		return nil
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, &flagError{ref: ref(flag), err: err}
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			raw := sc.Bytes()
			if line == 1 { // as Notepad and PowerShell may save it
				raw = ingest.TrimByteOrderMark(raw)
			}
			text, _, _ := strings.Cut(string(raw), "#")
			if strings.TrimSpace(text) == "" {
				continue
			}
			if err := add(ref(flag), fmt.Sprintf("%s %s line %d", ref(flag), path, line), text); err != nil {
				return nil, nil, err
			}
		}
		if err := sc.Err(); err != nil {
			return nil, nil, &flagError{ref: ref(flag), err: err}
		}
	}
	for _, entry := range strings.Split(inline, ",") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		if err := add(ref(flag+"-inline"), ref(flag+"-inline"), entry); err != nil {
			return nil, nil, err
		}
	}
	return keys, from, nil
}

// loadWriteKeys reads --write-keys and --write-keys-inline: each key with the source stored with
// its events. Errors name the flags as ref does.
func loadWriteKeys(ref func(flag string) string, path, inline string) (map[string]string, error) {
	keys, _, err := loadKeys(ref, "write-keys", "SOURCE", path, inline)
	return keys, err
}

// loadReadKeys reads --read-keys and --read-keys-inline: each key with the name of its holder
// (errors name the flags as ref does).
// A key may not be both: a write key (which web pages carry, readable by anyone) must never read,
// and a read key must never write, so a key in both lists is an error.
func loadReadKeys(ref func(flag string) string, path, inline string, writeKeys map[string]string) (readKeys, error) {
	keys, from, err := loadKeys(ref, "read-keys", "NAME", path, inline)
	if err != nil {
		return readKeys{}, err
	}
	var rk readKeys
	for key, name := range keys {
		if _, both := writeKeys[key]; both {
			return readKeys{}, fmt.Errorf("%s: the key of %q is also a write key; give reading and writing different keys", from[key], name)
		}
		rk.hashes = append(rk.hashes, sha256.Sum256([]byte(key)))
		rk.names = append(rk.names, name)
	}
	return rk, nil
}

// readKeys are the keys that may read the query API, kept as SHA-256 hashes so that every
// comparison takes the same time whatever the key sent.
type readKeys struct {
	hashes [][32]byte
	names  []string
}

// holder returns the name of the key's holder, comparing key with every read key in constant time
// (crypto/subtle), so the time taken tells nothing about how much of a key was right.
func (k readKeys) holder(key string) (string, bool) {
	h := sha256.Sum256([]byte(key))
	found := -1
	for i := range k.hashes {
		if subtle.ConstantTimeCompare(h[:], k.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return k.names[found], true
}

// readKeyOf returns the key a request carries: `Authorization: Bearer KEY` (RFC 6750), or Basic
// auth with the key as user name, read as the collector reads a write key (ingest.BasicAuthUser;
// the password is ignored).
func readKeyOf(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	if scheme, token, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(token)
	}
	return ingest.BasicAuthUser(r)
}

// requireReadKey lets a request through to next only when it carries one of keys. Otherwise it
// answers 401 with a JSON body naming the Authorization header, and a Bearer challenge (RFC 6750
// §3). The challenge offers no Basic scheme, on purpose: a browser would answer that with its own
// login dialog for the page's API calls, and the page asks for the key itself. Basic auth sent
// without being asked (curl -u KEY:) is accepted.
func requireReadKey(keys readKeys, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := readKeyOf(r)
		if _, ok := keys.holder(key); ok {
			next.ServeHTTP(w, r)
			return
		}
		msg := "a read key is required: send Authorization: Bearer KEY, or Basic auth with the key as user name"
		challenge := `Bearer realm="waymark"`
		if key != "" {
			msg = "unknown read key (a write key is not a read key)"
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": msg, "param": "Authorization"})
	})
}
