package ingest

import "sync"

// health holds the last error of a long-running part, nil when it works, and the step that
// failed when it is known.
type health struct {
	mu   sync.Mutex
	err  error
	step string
}

func (h *health) set(err error) { h.setStep("", err) }

// setStep records that step failed with err (err nil: everything works).
func (h *health) setStep(step string, err error) {
	h.mu.Lock()
	h.err, h.step = err, step
	h.mu.Unlock()
}

// clearStep forgets the last error if it was step's: step has since succeeded.
func (h *health) clearStep(step string) {
	h.mu.Lock()
	if h.step == step {
		h.err, h.step = nil, ""
	}
	h.mu.Unlock()
}

func (h *health) get() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}
