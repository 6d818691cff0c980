package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"time"
)

// runHealthcheck asks a running Waymark's /readyz and fails unless it answers 200. The container
// image has no shell or curl, so its HEALTHCHECK runs this.
func runHealthcheck(ctx context.Context, args []string) error {
	fs := newFlagSet("healthcheck", "healthcheck [--url http://127.0.0.1:8080/readyz]")
	var url string
	checkedVar(fs, &url, "url", "http://127.0.0.1:8080/readyz", "readiness URL to ask (http or https)", text, checkHTTPURL)
	var timeout time.Duration
	checkedVar(fs, &timeout, "timeout", 3*time.Second, "how long to wait for the answer", parseDuration, positive)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fs.errorf("url", "%w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", url, resp.Status)
	}
	return nil
}

// checkHTTPURL refuses what is not an absolute http or https URL with a host: "not a url" was
// asked for and failed as "unsupported protocol scheme", without the flag's name.
func checkHTTPURL(s string) error {
	u, err := neturl.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an http:// or https:// URL with a host")
	}
	return nil
}
