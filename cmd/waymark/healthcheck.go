package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// runHealthcheck asks a running Waymark's /readyz and fails unless it answers 200. The container
// image has no shell or curl, so its HEALTHCHECK runs this.
func runHealthcheck(ctx context.Context, args []string) error {
	fs := newFlagSet("healthcheck", "healthcheck [--url http://127.0.0.1:8080/readyz]")
	url := fs.String("url", "http://127.0.0.1:8080/readyz", "readiness URL to ask")
	var timeout time.Duration
	checkedVar(fs, &timeout, "timeout", 3*time.Second, "how long to wait for the answer", time.ParseDuration, positive)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fs.errorf("url", "%w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", *url, resp.Status)
	}
	return nil
}
