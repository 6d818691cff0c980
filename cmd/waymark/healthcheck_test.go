package main

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/waymark-dev/waymark/store/storetest"
)

// TestHealthcheckFollowsHTTPAddr: `waymark healthcheck` asks the address serve listens on, read
// from the same --http-addr flag and WAYMARK_HTTP_ADDR variable (the container sets the variable
// for both), an unspecified host meaning loopback; it fails for an address nothing serves.
func TestHealthcheckFollowsHTTPAddr(t *testing.T) {
	storetest.FirstPassOnly(t)
	t.Parallel()
	s := startServe(t)
	_, port, err := net.SplitHostPort(s.http)
	if err != nil {
		t.Fatal(err)
	}
	nobody := freeAddr(t)
	tests := []struct {
		name string
		env  string // WAYMARK_HTTP_ADDR; "" leaves it unset
		args []string
		ok   bool
	}{
		{"serve's address in the variable", s.http, nil, true},
		{"every interface in the variable", "0.0.0.0:" + port, nil, true},
		{"serve's address in the flag", "", []string{"--http-addr", s.http}, true},
		{"the flag over the variable", nobody, []string{"--http-addr", "[::]:" + port}, true},
		{"an address nothing serves", s.http, []string{"--http-addr", nobody}, false},
		{"--url over both", nobody, []string{"--url", "http://" + s.http + "/readyz"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary, append([]string{"healthcheck", "--timeout", "1m"}, tt.args...)...)
			cmd.Env = os.Environ()
			if tt.env != "" {
				cmd.Env = append(cmd.Env, "WAYMARK_HTTP_ADDR="+tt.env)
			}
			out, err := cmd.CombinedOutput()
			if ok := err == nil; ok != tt.ok {
				t.Errorf("waymark healthcheck %s (WAYMARK_HTTP_ADDR=%s): %v, want success %v\n%s", strings.Join(tt.args, " "), tt.env, err, tt.ok, out)
			}
		})
	}
}
