package main

import (
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
)

// maxDrainBytes bounds what earlyAnswers reads and drops of a request's body after an answer
// written before the body was read: 8 times the tracking API's batch limit (500 KB), 4 times the
// query API's (1 MiB). A client that writes a body up to this long before it reads its answer
// gets the answer; one that writes more has its connection closed while it still writes, and
// sees a reset.
const maxDrainBytes = 4 << 20

// maxHeldBytes bounds the early answer earlyAnswers holds to send whole: an error's JSON is far
// smaller. A longer one is sent as it is written, and ends with the body's drain.
const maxHeldBytes = 64 << 10

// earlyAnswers passes each request to next, and when next answers before the request's body has
// been read to its end (a 413 of a body over its limit, or a 400, 401, 404 or 405 decided from
// the head alone), sends that answer whole at once (with its Content-Length, so the client has
// all of it) and Connection: close, and then reads and drops the rest of the body, up to
// maxDrainBytes and within the server's read timeout (--http-read-timeout), before the
// connection is closed. nginx answers a body over client_max_body_size so: 413 at once, then its
// "lingering close", reading and dropping what the client still sends.
//
// net/http alone does neither well: it reads up to 256 KiB of an unread body before it writes
// the answer, so the answer waited for a client that sends its body slowly or never (a GET that
// declared Content-Length: 5000 and sent less got its answer after the read timeout, 30 s:
// tester F6); past 256 KiB, or with Connection: close, it closes the connection without reading
// further, so a client that writes its whole body before it reads (python's urllib, most
// hand-written clients) got a reset or a broken pipe instead of the 413, and Segment's libraries,
// which retry network errors but not a 4xx, retried it forever (tester F7).
func earlyAnswers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 { // no body
			next.ServeHTTP(w, r)
			return
		}
		body := &watchedBody{ReadCloser: r.Body}
		ew := &earlyWriter{ResponseWriter: w, body: body}
		r = r.WithContext(r.Context()) // a copy: a handler does not change the server's request
		r.Body = body
		next.ServeHTTP(ew, r)
		if ew.status == 0 {
			ew.WriteHeader(http.StatusOK) // as net/http answers a handler that wrote nothing
		}
		if !ew.early {
			return
		}
		if ew.holding {
			ew.send(true)
		}
		if http.NewResponseController(w).Flush() != nil {
			return // the client is gone
		}
		_, _ = io.CopyN(io.Discard, body.ReadCloser, maxDrainBytes)
	})
}

// watchedBody is a request's body that knows whether it has been read to its end.
type watchedBody struct {
	io.ReadCloser
	ended atomic.Bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.ended.Store(true)
	}
	return n, err
}

// earlyWriter is the writer of earlyAnswers. An answer begun before body has been read to its
// end is early: it goes with Connection: close, its body left readable after it (full duplex:
// net/http would otherwise read the rest first), and is held until the handler returns (up to
// maxHeldBytes), to be sent whole.
type earlyWriter struct {
	http.ResponseWriter
	body    *watchedBody
	status  int  // the answer's, once begun
	early   bool // the answer began before the body's end
	holding bool // the early answer is held, not yet written
	held    []byte
}

func (w *earlyWriter) WriteHeader(code int) {
	if code < 200 || w.status != 0 { // a 1xx is not the answer; a second status is net/http's to log
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.status = code
	if w.body.ended.Load() {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.early, w.holding = true, true
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w.ResponseWriter).EnableFullDuplex()
}

func (w *earlyWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.holding {
		if len(w.held)+len(p) <= maxHeldBytes {
			w.held = append(w.held, p...)
			return len(p), nil
		}
		w.send(false)
	}
	return w.ResponseWriter.Write(p)
}

// send writes the held answer, with its Content-Length when it is whole.
func (w *earlyWriter) send(whole bool) {
	w.holding = false
	if whole && w.status != http.StatusNoContent && w.status != http.StatusNotModified {
		w.Header().Set("Content-Length", strconv.Itoa(len(w.held)))
	}
	w.ResponseWriter.WriteHeader(w.status)
	if len(w.held) > 0 {
		_, _ = w.ResponseWriter.Write(w.held) // an error is the client gone: the drain ends at once
	}
	w.held = nil
}

// Unwrap gives http.ResponseController the server's writer.
func (w *earlyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
