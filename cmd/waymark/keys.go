package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// loadWriteKeys reads write keys from a file (one "KEY SOURCE" or "KEY=SOURCE" per line, # starts
// a comment) and from an inline list ("KEY=SOURCE,KEY=SOURCE"). Errors name the flag and line.
func loadWriteKeys(path, inline string) (map[string]string, error) {
	keys := map[string]string{}
	add := func(where, entry string) error {
		key, source, ok := strings.Cut(entry, "=")
		if !ok {
			f := strings.Fields(entry)
			if len(f) == 2 {
				key, source, ok = f[0], f[1], true
			}
		}
		key, source = strings.TrimSpace(key), strings.TrimSpace(source)
		if !ok || key == "" || source == "" {
			return fmt.Errorf("%s: want KEY=SOURCE or KEY SOURCE, got %q", where, entry)
		}
		if prev, dup := keys[key]; dup && prev != source {
			return fmt.Errorf("%s: key given twice, for sources %q and %q", where, prev, source)
		}
		keys[key] = source
		return nil
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--write-keys: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			text, _, _ := strings.Cut(sc.Text(), "#")
			if strings.TrimSpace(text) == "" {
				continue
			}
			if err := add(fmt.Sprintf("--write-keys %s line %d", path, line), text); err != nil {
				return nil, err
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--write-keys: %w", err)
		}
	}
	for _, entry := range strings.Split(inline, ",") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		if err := add("--write-keys-inline", entry); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
