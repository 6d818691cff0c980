package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"time"
)

// runHealthcheck asks a running Waymark's /readyz and fails unless it answers 200. The container
// image has no shell or curl, so its HEALTHCHECK runs this. It asks serve's own address: the same
// --http-addr flag and WAYMARK_HTTP_ADDR variable (addHTTPAddrFlag), an unspecified host (0.0.0.0,
// [::] or none) read as loopback; --url, when given, is asked instead.
func runHealthcheck(ctx context.Context, args []string) error {
	fs := newFlagSet("healthcheck", "healthcheck [--http-addr 127.0.0.1:8080 | --url http://127.0.0.1:8080/readyz]")
	httpAddr := addHTTPAddrFlag(fs)
	var url string
	checkedVar(fs, &url, "url", "", "readiness URL to ask (http or https); empty: http://<--http-addr>/readyz", text, checkHTTPURL)
	var timeout time.Duration
	checkedVar(fs, &timeout, "timeout", 3*time.Second, "how long to wait for the answer", parseDuration, positive)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if url == "" {
		u, err := readyzURL(*httpAddr)
		if err != nil {
			return fs.errorf("http-addr", "%w", err)
		}
		url = u
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fs.errorf("url", "%w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	switch {
	case err == nil:
	case dialFailed(err) && fs.given("url"):
		return noAnswer(fs, "url", "server", url, err)
	case dialFailed(err):
		return noAnswer(fs, "http-addr", "Waymark", *httpAddr, err)
	default:
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", url, resp.Status)
	}
	return nil
}

// readyzURL is the /readyz URL of a server listening on addr (host:port): an unspecified host
// (0.0.0.0, [::], none), which serve listens on for every interface, is asked on loopback.
func readyzURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port == "0" {
		return "", errors.New("port 0 is any free port to serve, not one to ask: give serve's port, or --url")
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// checkHTTPURL refuses what is not an absolute http or https URL with a host (healthcheck's --url,
// asked as it is; replay's --collector, a base URL, is read by ingest.ParseBaseURL): "not a url"
// was asked for and failed as "unsupported protocol scheme", without the flag's name. "" is the
// flag's default (derived from --http-addr).
func checkHTTPURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := neturl.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an http:// or https:// URL with a host")
	}
	return nil
}
