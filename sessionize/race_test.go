//go:build race

package sessionize

// raceDetector is true in a test binary built with -race (norace_test.go sets it false).
const raceDetector = true
