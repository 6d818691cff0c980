// Package web serves the journey map page: a picture of the customer journey drawn from the query
// API (/api/v1/), with the stages, their touchpoints, the flow between them, the fork after any
// touchpoint and an editable funnel. The page is plain HTML, CSS and JavaScript embedded in the
// binary: no build step, no CDN, no network access beyond the API it is served with.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Register mounts the page on mux: / and its assets under /ui/.
func Register(mux *http.ServeMux) {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded directory is part of the build
	}
	serve := http.FileServerFS(files)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w.Header())
		http.ServeFileFS(w, r, files, "index.html")
	})
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w.Header())
		serve.ServeHTTP(w, r)
	})))
}

// setHeaders sets the page's and its assets' security headers: scripts, styles and requests from
// the page's own origin only; no other site may frame the page (frame-ancestors, and
// X-Frame-Options for browsers without it: OWASP's clickjacking defence), and no content sniffing.
func setHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
}
