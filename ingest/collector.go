package ingest

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"
)

// Segment's documented limits.
const (
	DefaultMaxEventBytes = 32 << 10  // one event
	DefaultMaxBatchBytes = 500 << 10 // one request body, after decompression
)

// smallestEvent is the shortest event a batch can hold that is valid: a batch's event names its
// type (page is the shortest, and needs no name) and a userId or anonymousId (userId is the
// shorter, and a one-digit number other than 0 the shortest id).
const smallestEvent = `{"type":"page","userId":1}`

// maxBatchEvents is the most events a batch body of n bytes holds when every one is valid:
// {"batch":[…]} with nothing else, of events of smallestEvent's length, a comma between each;
// 18,962 in 500 KB. Segment limits a batch by its bytes alone, and so does Waymark for batches of
// events: only a body of more items holds some that are no event (1, {}, null). Those the byte
// limit alone does not bound well: 500 KB of "1," is 256,000 items, each dead-lettered and
// listed in the answer (29 MB of it; 730 MB allocated and 3.6 s against the dev broker), so
// parseRequest refuses a batch of more items than this.
func maxBatchEvents(n int) int { return (n - len(`{"batch":[]}`) + 1) / (len(smallestEvent) + 1) }

// MaxStampBytes is the most the collector's stamps (receivedAt, messageId, type, the corrected
// timestamp and the client's as originalTimestamp) and a batch's sentAt and context, copied into
// an event without them (of the context, the members the event's own lacks: mergeContext), may
// add to an event of at most the event limit. The collector dead-letters an event that grows
// more (too_large), so the consumer holds every message it reads to a limit: a message produced
// straight to Kafka to the event limit, one carrying the collector's header (HeaderSource) to the
// event limit plus MaxStampBytes.
const MaxStampBytes = 1 << 10

// CollectorConfig configures a Collector.
type CollectorConfig struct {
	Brokers  []string // Kafka bootstrap brokers; required
	Topic    string   // default "waymark.events"
	DLQTopic string   // default "waymark.dlq"
	// WriteKeys maps each accepted write key to the source name stored with its events.
	WriteKeys map[string]string
	// MaxEventBytes and MaxBatchBytes limit one event and one (decompressed) body; defaults
	// 32 KiB and 500 KiB, as Segment documents.
	MaxEventBytes, MaxBatchBytes int
	// ProduceTimeout is how long a request waits for Kafka before answering 503; default 10s.
	ProduceTimeout time.Duration
	// BrokerCheckInterval is how often Run asks Kafka whether the topic's partition leaders can
	// be reached while they can; default 5s. While they cannot, Run asks every second.
	BrokerCheckInterval time.Duration
	// RateLimit is the events per second allowed per write key, with bursts of RateBurst
	// events (default max(RateLimit, 500)); 0 (default) means no limit. A call of more events
	// than the burst passes when the whole burst is available, and later calls wait for the
	// events beyond it.
	RateLimit float64
	RateBurst int
	// PublicURL is the collector's address as browsers reach it, scheme://host[:port][/path]
	// (https://collect.shop.example): the settings analytics.js loads point it there, the same
	// for every request, as Segment's CDN serves one apiHost. Default "": the request's Host,
	// checked to be a plain host and answered not to be cached (see settings).
	PublicURL string
}

func (c *CollectorConfig) setDefaults() {
	if c.Topic == "" {
		c.Topic = "waymark.events"
	}
	if c.DLQTopic == "" {
		c.DLQTopic = "waymark.dlq"
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = DefaultMaxEventBytes
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = 10 * time.Second
	}
	if c.BrokerCheckInterval == 0 {
		c.BrokerCheckInterval = 5 * time.Second
	}
	if c.RateLimit > 0 && c.RateBurst == 0 {
		c.RateBurst = max(int(c.RateLimit), 500)
	}
}

// Validate reports the first setting that cannot work.
func (c *CollectorConfig) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafka brokers: at least one is required")
	case c.MaxEventBytes <= 0 || c.MaxBatchBytes < c.MaxEventBytes:
		return fmt.Errorf("limits: want 0 < max event bytes (%d) <= max batch bytes (%d)", c.MaxEventBytes, c.MaxBatchBytes)
	case c.RateLimit < 0:
		return fmt.Errorf("rate limit: must not be negative, got %v", c.RateLimit)
	}
	if err := checkTopics(c.Topic, c.DLQTopic); err != nil {
		return err
	}
	for k, src := range c.WriteKeys {
		if k == "" || src == "" {
			return fmt.Errorf("write keys: key %q has source %q; both must be set", k, src)
		}
	}
	if c.PublicURL != "" {
		if _, _, err := ParsePublicURL(c.PublicURL); err != nil {
			return fmt.Errorf("public url %q: %w", c.PublicURL, err)
		}
	}
	return nil
}

// ParsePublicURL reads a collector's public address (CollectorConfig.PublicURL) into the apiHost
// analytics.js posts to, host[:port][/path]/v1 without the scheme, and its protocol, http or
// https. The address is a collector's base URL, as ParseBaseURL reads it.
func ParsePublicURL(s string) (apiHost, protocol string, err error) {
	u, err := ParseBaseURL(s)
	if err != nil {
		return "", "", err
	}
	return u.Host + strings.TrimRight(u.EscapedPath(), "/") + "/v1", u.Scheme, nil
}

// ParseBaseURL reads the base URL of a collector, under which its tracking API is served (the
// collector's public address, replay's collector): an http or https URL with a plain host
// (plainHost) and nothing but a path after it, no user, query or fragment; errors do not repeat
// s (url.Parse's do). The path, when there
// is one, is a prefix the API is under (a proxy's: https://shop.example/waymark/ serves
// /waymark/v1/batch), with or without a trailing slash; a path that is the API's own (ending in
// /v1, or in an endpoint under it such as /v1/batch) is refused, as the API's path added to it
// would name no endpoint (/v1/v1/batch). A client joins the API's path to it with
// url.URL.JoinPath.
func ParseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil && !strings.Contains(s, "://"): // 127.0.0.1:8080 fails as "first path segment in URL cannot contain colon"
		return nil, errors.New("want http:// or https:// and the host the collector is reached at")
	case err != nil:
		return nil, err
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("want http:// or https:// and the host the collector is reached at")
	case u.Opaque != "" || !plainHost(u.Host):
		return nil, fmt.Errorf("want a host name or IP address, and a port, after %s://", u.Scheme)
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return nil, errors.New("want scheme://host[:port][/path], with no user, query or fragment")
	}
	// The API's own path, /v1 or an endpoint under it (/v1/batch), with base before it.
	p := strings.TrimRight(u.Path, "/")
	base, last := path.Dir(p), path.Base(p)
	_, endpoint := endpoints["/v1/"+last]
	switch {
	case last == "v1":
	case endpoint && path.Base(base) == "v1":
		base = path.Dir(base)
	default:
		return u, nil
	}
	want := url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimRight(base, "/")}
	return nil, fmt.Errorf("ends in the tracking API's path (/v1…), which is added to the base URL: want %s", want.String())
}

// plainHost reports whether hostport, a URL's or a request's Host, is a host and nothing else: a
// name of letters, digits, '-' and '_' in dot-separated labels (RFC 1123, with the underscore
// that real hosts use), an IPv4 address, or an IPv6 address in brackets; then an optional port of
// digits. Anything else (a space, a quote, '<', a slash, '@') is refused, so a request's Host
// reflected in an answer can name another host but inject nothing.
func plainHost(hostport string) bool {
	host := hostport
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.HasSuffix(hostport, "]") {
		port := hostport[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strings.Trim(port, "0123456789") != "" {
			return false
		}
		host = hostport[:i]
	}
	if ip, ok := strings.CutPrefix(host, "["); ok {
		ip, ok = strings.CutSuffix(ip, "]")
		a, err := netip.ParseAddr(ip)
		return ok && err == nil && a.Is6() && a.Zone() == ""
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || strings.Trim(strings.ToLower(label), "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return false
		}
	}
	return true
}

// Collector is the Segment-compatible HTTP tracking API. It accepts the calls analytics.js,
// analytics-node and the other Segment libraries send, and answers 200 only once Kafka has
// acknowledged every accepted event.
type Collector struct {
	cfg       CollectorConfig
	log       *slog.Logger
	producer  *kafka.Writer
	dlq       *kafka.Writer
	transport *kafka.Transport // the producers'
	metrics   *collectorMetrics
	// instrument counts and times a handler's answers by endpoint (and code) in metrics'
	// requests and seconds (Counted).
	instrument func(http.Handler) http.Handler
	limiters   sync.Map // write key -> *rate.Limiter
	draining   atomic.Bool
	// kafka is why events cannot be produced now, nil when they can: set by Run's broker checks
	// and by every produce, so /readyz fails as soon as Kafka does and recovers by itself.
	kafka *health
	// apiHost and protocol are what the settings answer names (ParsePublicURL of the configured
	// PublicURL), "" when none is configured.
	apiHost, protocol string
}

// NewCollector checks cfg and builds a Collector. Nothing connects until the first request or
// Run's first check; until that check passes, Ready reports the collector not ready.
func NewCollector(cfg CollectorConfig, log *slog.Logger, reg prometheus.Registerer) (*Collector, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("collector config: %w", err)
	}
	m, err := newCollectorMetrics(reg)
	if err != nil {
		return nil, err
	}
	var apiHost, protocol string
	if cfg.PublicURL != "" {
		apiHost, protocol, _ = ParsePublicURL(cfg.PublicURL) // Validate read it
	}
	// The producers' own transport, so that Run can drop its connections and cached metadata
	// when Kafka is back: kafka-go would otherwise go on answering with the outage's error until
	// its metadata expires.
	transport := &kafka.Transport{Dial: (&net.Dialer{Timeout: 3 * time.Second}).DialContext}
	writer := func(topic string) *kafka.Writer {
		return &kafka.Writer{
			Addr:                   kafka.TCP(cfg.Brokers...),
			Transport:              transport,
			Topic:                  topic,
			Balancer:               partitionBalancer{},
			RequiredAcks:           kafka.RequireAll,
			BatchSize:              1000,
			BatchBytes:             1_000_000,
			BatchTimeout:           2 * time.Millisecond,
			MaxAttempts:            3,
			WriteBackoffMin:        50 * time.Millisecond,
			WriteBackoffMax:        500 * time.Millisecond,
			AllowAutoTopicCreation: true,
		}
	}
	if len(cfg.WriteKeys) == 0 {
		log.Warn("collector has no write keys: every tracking call will get 401; set --write-keys or --write-keys-inline")
	}
	c := &Collector{cfg: cfg, log: log, producer: writer(cfg.Topic), dlq: writer(cfg.DLQTopic), transport: transport, metrics: m, kafka: &health{},
		apiHost: apiHost, protocol: protocol}
	c.kafka.set(errors.New("kafka not checked yet"))
	// client_golang's promhttp sees each answer's status through its own wrapper of the writer,
	// which keeps the writer's optional interfaces; the endpoint label is Handler's endpointOf.
	label := promhttp.WithLabelFromCtx("endpoint", func(ctx context.Context) string { return ctx.Value(endpointKey{}).(string) })
	c.instrument = func(next http.Handler) http.Handler {
		return promhttp.InstrumentHandlerDuration(m.seconds, promhttp.InstrumentHandlerCounter(m.requests, next, label), label)
	}
	return c, nil
}

// endpointKey is the context key of a tracking call's endpoint (endpointOf), its metrics' label.
type endpointKey struct{}

// Run checks every BrokerCheckInterval (every second while it fails) that the topic's partition
// leaders answer, so that Ready tells whether events can be produced even when no request
// comes, and recovers by itself once Kafka is back. It returns nil when ctx is done.
func (c *Collector) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		err := c.checkKafka(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil && c.kafka.get() != nil {
			c.transport.CloseIdleConnections() // start afresh, not from the outage's state
		}
		c.setKafka(err)
		wait := c.cfg.BrokerCheckInterval
		if err != nil {
			wait = min(wait, time.Second)
		}
		timer.Reset(wait)
	}
}

// checkKafka asks a bootstrap broker for the topic's partitions (creating the topic when the
// broker allows, as the producer would) and then asks each partition leader for its API
// versions: the cheapest requests that show a produce would reach every partition.
func (c *Collector) checkKafka(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ProduceTimeout)
	defer cancel()
	dialer := &kafka.Dialer{Timeout: c.cfg.ProduceTimeout}
	var errs []error
	for _, broker := range c.cfg.Brokers {
		parts, err := readPartitions(ctx, dialer, broker, c.cfg.Topic)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		leaders := map[string]bool{}
		for _, p := range parts {
			if p.Error != nil || p.Leader.Host == "" {
				return fmt.Errorf("kafka topic %s partition %d has no leader: %v", c.cfg.Topic, p.ID, p.Error)
			}
			leaders[net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))] = true
		}
		if len(parts) == 0 {
			return fmt.Errorf("kafka topic %s has no partitions yet", c.cfg.Topic)
		}
		for leader := range leaders {
			conn, err := dialer.DialContext(ctx, "tcp", leader)
			if err == nil {
				if deadline, ok := ctx.Deadline(); ok {
					conn.SetDeadline(deadline)
				}
				_, err = conn.ApiVersions()
				conn.Close()
			}
			if err != nil {
				return fmt.Errorf("kafka partition leader %s: %w", leader, err)
			}
		}
		return nil
	}
	return fmt.Errorf("kafka brokers %s: %w", strings.Join(c.cfg.Brokers, ","), errors.Join(errs...))
}

// readPartitions reads the partitions of topic from one broker.
func readPartitions(ctx context.Context, dialer *kafka.Dialer, broker, topic string) ([]kafka.Partition, error) {
	conn, err := dialer.DialContext(ctx, "tcp", broker)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	return conn.ReadPartitions(topic)
}

// setKafka records whether events can be produced, logging each change.
func (c *Collector) setKafka(err error) {
	was := c.kafka.get()
	c.kafka.set(err)
	switch {
	case err != nil && was == nil:
		c.log.Warn("kafka unavailable: /readyz fails until it is back", "err", err)
	case err == nil && was != nil:
		c.log.Info("kafka available: the collector is ready")
	}
}

// Drain makes the collector refuse new tracking calls with 503, so load balancers and SDKs move
// on while in-flight requests finish. Ready reports it.
func (c *Collector) Drain() { c.draining.Store(true) }

// Ready reports nil when the collector takes events: it is not draining, and Kafka took the last
// produce or answered the last check of Run (before Run's first check, it is not ready).
func (c *Collector) Ready() error {
	if c.draining.Load() {
		return errors.New("collector is draining")
	}
	if err := c.kafka.get(); err != nil {
		return fmt.Errorf("collector cannot produce: %w", err)
	}
	return nil
}

// Close flushes and closes the Kafka producers.
func (c *Collector) Close() error {
	err := errors.Join(c.producer.Close(), c.dlq.Close())
	c.transport.CloseIdleConnections()
	return err
}

// endpoints maps each tracking path to its call type ("batch" for batches). A single call's type is
// its endpoint's whatever type its body names, as in Segment's HTTP API (/v1/track is a track):
// stamp replaces the body's. Refusing a body that disagrees would break clients Segment takes.
// /v1/import is /v1/batch under the name Segment's server libraries post to (analytics-ruby's
// PATH '/v1/import', analytics-java's @POST("/v1/import")); Segment's HTTP API takes both.
var endpoints = map[string]string{
	"/v1/batch": "batch", "/v1/import": "batch", "/v1/b": "batch", "/b": "batch", "/batch": "batch",
	"/v1/track": "track", "/v1/t": "track",
	"/v1/identify": "identify", "/v1/i": "identify",
	"/v1/page": "page", "/v1/p": "page",
	"/v1/screen": "screen", "/v1/s": "screen",
	"/v1/group": "group", "/v1/g": "group",
	"/v1/alias": "alias", "/v1/a": "alias",
}

// unknownEndpoint is the endpoint label of a request to a path under /v1/ that is no tracking
// endpoint, answered 404.
const unknownEndpoint = "unknown"

// settingsEndpoint is the endpoint label of GET /v1/projects/{writeKey}/settings.
const settingsEndpoint = "settings"

// endpointOf returns the call type of a request's path (endpoints), unknownEndpoint for any other.
// The path is read as sent, never cleaned: /v1//batch and /v1/import// are no endpoint (Segment's
// API does not take /v1//batch either: analytics-node's pull request #81, a host's trailing
// slash, lost a user's events, and the fix was the library's). An encoded slash is part of a
// segment, not a separator (RFC 3986 §2.2): /v1/batch%2F is not /v1/batch/. One trailing slash is
// taken (/v1/batch/ is /v1/batch): it can mean no other endpoint, Segment's libraries trim a
// host's trailing slash before they add the path, and a 404 would lose the events of a
// hand-written client for good, since no Segment library retries a 4xx.
func endpointOf(u *url.URL) string {
	path := u.Path
	if strings.Count(u.EscapedPath(), "/") != strings.Count(path, "/") {
		return unknownEndpoint // an encoded slash
	}
	if kind, ok := endpoints[path]; ok {
		return kind
	}
	if trimmed, ok := strings.CutSuffix(path, "/"); ok {
		if kind, ok := endpoints[trimmed]; ok {
			return kind
		}
	}
	return unknownEndpoint
}

// Handler returns the collector's HTTP handler: the requests it Answers, Counted and Served, and
// every other request passed to other. A server that answers some of the collector's requests
// itself (a URL over its limit) composes the three instead.
func (c *Collector) Handler(other http.Handler) http.Handler {
	counted := c.Counted(http.HandlerFunc(c.Serve))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.Answers(r) {
			counted.ServeHTTP(w, r)
			return
		}
		other.ServeHTTP(w, r)
	})
}

// Answers reports whether a request is the collector's: /v1 and every path under it (the tracking
// endpoints, GET /v1/projects/{writeKey}/settings, and any other path, answered with a JSON 404
// and counted as endpoint "unknown") and the top-level short forms /b and /batch. Paths are taken
// as sent (see endpointOf): an http.ServeMux would answer /v1, /v1//batch or /v1/import// with a
// redirect and no body, where a client needs the 404 that says why.
func (c *Collector) Answers(r *http.Request) bool {
	return collectorPath(r.URL.EscapedPath()) || collectorPath(strings.ToLower(r.URL.Path))
}

// Counted returns next counted and timed in the collector's metrics
// (waymark_collector_requests_total, waymark_collector_request_duration_seconds) under the endpoint label of
// the request's path: its call type (endpointOf), "settings", or "unknown". Whatever answers the
// request, next or a handler it calls, is counted with its status; Serve must run inside it.
func (c *Collector) Counted(next http.Handler) http.Handler {
	counted := c.instrument(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		endpoint := endpointOf(r.URL)
		if _, ok := settingsKey(r.URL.EscapedPath()); ok {
			endpoint = settingsEndpoint
		}
		counted.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), endpointKey{}, endpoint)))
	})
}

// Serve answers one of the requests the collector Answers: a tracking call, a settings request,
// or a JSON 404. It runs inside Counted, which names the endpoint.
func (c *Collector) Serve(w http.ResponseWriter, r *http.Request) {
	if key, ok := settingsKey(r.URL.EscapedPath()); ok {
		c.settings(w, r, key)
		return
	}
	c.serveTracking(w, r)
}

// collectorPath reports whether the collector answers path: /v1, a path under it or a top-level
// short form, as sent or once cleaned of doubled slashes and dot segments (//v1/batch, /./b), so
// that those get the collector's JSON 404 and not the redirect without a body an http.ServeMux
// answers: a client whose host ends in a slash posts to //v1/batch, and a redirected POST loses
// its events. Handler asks it of the path as escaped and of the path unescaped in lower case
// (/V1/batch, /%2Fv1/track), which get the JSON 404 too.
func collectorPath(p string) bool {
	for _, p := range []string{p, path.Clean(p)} {
		if _, short := endpoints[p]; short || p == "/v1" || strings.HasPrefix(p, "/v1/") {
			return true
		}
	}
	return false
}

// settingsKey returns the write key of a settings path, /v1/projects/{writeKey}/settings (as
// escaped; the key is one segment), and whether path is one.
func settingsKey(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/v1/projects/")
	if !ok {
		return "", false
	}
	seg, ok := strings.CutSuffix(rest, "/settings")
	if !ok || seg == "" || strings.Contains(seg, "/") {
		return "", false
	}
	key, err := url.PathUnescape(seg)
	return key, err == nil
}

// serveTracking handles one tracking call, or a path under /v1/ that is none (a JSON 404).
func (c *Collector) serveTracking(w http.ResponseWriter, r *http.Request) {
	kind := r.Context().Value(endpointKey{}).(string)
	SetCORS(w, r)
	switch path := r.URL.EscapedPath(); {
	case kind == unknownEndpoint:
		writeJSON(w, http.StatusNotFound, errorBody{Field: "path", Path: path,
			Error: fmt.Sprintf("no tracking endpoint at %s: post batches to /v1/batch (or /v1/import), single calls to /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias", path)})
		return
	case r.Method == http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", "POST, OPTIONS")
		WriteError(w, http.StatusMethodNotAllowed, "method", "tracking calls are POST requests")
		return
	case c.draining.Load():
		w.Header().Set("Retry-After", "5")
		WriteError(w, http.StatusServiceUnavailable, "", "the collector is shutting down; retry")
		return
	}
	if err := c.handle(w, r, kind); err != nil {
		c.log.Debug("tracking call rejected", "path", r.URL.Path, "err", err)
	}
}

// refuseRequest answers a request with a member of the wrong type (a batch's own context,
// integrations, sentAt or writeKey: one value for all its events, so the request is refused
// rather than each event blamed; or a single call's own) with a 400 naming it (bad, a
// requestError), after it has sent each of its events to the dead-letter topic with that reason,
// counted as the collector's other dead letters: Segment's libraries do not retry a 4xx, and
// nothing may be lost. Each is prepared as every event is (prepare), so its dead letter carries
// what a per-event rejection's does: receivedAt, the client's time as originalTimestamp beside
// the corrected timestamp, a messageId, the batch's members it took; a re-drive stores it at the
// time it was received, not at the time of the re-drive.
func (c *Collector) refuseRequest(w http.ResponseWriter, r *http.Request, source string, req *trackingRequest, bad error) error {
	var re *requestError
	if !errors.As(bad, &re) {
		return c.fail(w, bad)
	}
	accepted, rejected := c.prepare(req, source, time.Now().UTC())
	for _, a := range accepted {
		rejected = append(rejected, rejectedEvent{index: a.index, raw: a.raw, key: a.key})
	}
	slices.SortFunc(rejected, func(a, b rejectedEvent) int { return cmp.Compare(a.index, b.index) })
	for i := range rejected {
		rejected[i].reason, rejected[i].field, rejected[i].ofBatch = ReasonInvalidField, re.field, true
		rejected[i].err = &InvalidError{Reason: ReasonInvalidField, Field: re.field, Err: errors.New(re.message)}
	}
	if err := c.produce(r.Context(), source, nil, rejected); err != nil {
		return c.unavailable(w, r, err)
	}
	c.countRejected(rejected)
	return c.fail(w, bad)
}

// requestError is a problem with a request: its HTTP status, the field at fault and a message.
type requestError struct {
	status  int
	field   string
	message string
}

func (e *requestError) Error() string { return e.message }

func (c *Collector) handle(w http.ResponseWriter, r *http.Request, kind string) error {
	// A key sent in a header is checked before the body is read: a caller without a valid key
	// learns nothing about its body, and costs no decompression. Only a key in the body needs
	// the body parsed first.
	key := headerWriteKey(r)
	if _, ok := c.cfg.WriteKeys[key]; key != "" && !ok {
		return c.fail(w, &requestError{http.StatusUnauthorized, "writeKey", "unknown write key"})
	}
	body, err := c.readBody(r, kind)
	if err != nil {
		return c.fail(w, err)
	}
	c.metrics.bytes.Add(float64(len(body)))
	req, badMember := parseRequest(body, kind)
	if req == nil {
		return c.fail(w, badMember)
	}
	if key == "" {
		key = req.writeKey
	}
	source, ok := c.cfg.WriteKeys[key]
	if !ok {
		if badMember != nil { // named first, as it always was; without a write key nothing is dead-lettered
			return c.fail(w, badMember)
		}
		msg := "unknown write key"
		switch {
		case key == "" && r.Header.Get("Authorization") != "":
			// A header was sent, so the key is not missing: it could not be read (tester 19's T7).
			msg = "unreadable write key: the Authorization header is not Basic with base64 of writeKey: (the key as the user name); send it so, in X-Write-Key, or as writeKey in the body"
		case key == "":
			msg = "missing write key: send it as the Basic auth user name, in X-Write-Key, or as writeKey in the body"
		}
		return c.fail(w, &requestError{http.StatusUnauthorized, "writeKey", msg})
	}
	if err := c.allow(w, key, len(req.events)); err != nil {
		return c.fail(w, err)
	}
	if badMember != nil {
		return c.refuseRequest(w, r, source, req, badMember)
	}
	accepted, rejected := c.prepare(req, source, time.Now().UTC())
	if kind != "batch" && len(rejected) == 1 {
		// A single call that cannot be used: the SDK will not retry a 400, so it goes to the
		// dead-letter topic first, like a rejected event of a batch.
		if err := c.produce(r.Context(), source, nil, rejected); err != nil {
			return c.unavailable(w, r, err)
		}
		c.countRejected(rejected)
		return c.fail(w, &requestError{http.StatusBadRequest, rejected[0].field, rejected[0].err.Error()})
	}
	if err := c.produce(r.Context(), source, accepted, rejected); err != nil {
		return c.unavailable(w, r, err)
	}
	c.setKafka(nil)
	c.metrics.events.WithLabelValues("accepted", "").Add(float64(len(accepted)))
	for _, a := range accepted {
		if a.future {
			c.metrics.future.Inc()
		}
	}
	c.countRejected(rejected)
	resp := batchResponse{Success: true, Accepted: len(accepted)}
	for _, rj := range rejected {
		field := "batch[" + strconv.Itoa(rj.index) + "]" // every event of a batch, a batch of one too
		switch {
		case rj.ofBatch:
			field = rj.field // the batch's own sentAt, not one the event sent
		case rj.field != "":
			field += "." + rj.field
		}
		resp.Rejected = append(resp.Rejected, rejection{Index: rj.index, Reason: rj.reason, Field: field, Error: rj.err.Error()})
	}
	for _, a := range accepted {
		for _, ig := range a.ignored {
			field := ig.Field // a single call's own member
			if kind == "batch" {
				field = "batch[" + strconv.Itoa(a.index) + "]." + ig.Field
			}
			resp.Ignored = append(resp.Ignored, rejection{Index: a.index, Reason: ig.Reason, Field: field, Error: ig.Err.Error()})
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// countRejected counts events the dead-letter topic has taken: as received and rejected, and as
// dead letters of the collector's path.
func (c *Collector) countRejected(rejected []rejectedEvent) {
	for _, rj := range rejected {
		c.metrics.events.WithLabelValues("rejected", rj.reason).Inc()
		c.metrics.dead.WithLabelValues(rj.reason).Inc()
	}
}

// readBody reads the request body within the size limit, decompressing it as its
// Content-Encoding says: gzip (or x-gzip), deflate (the zlib format, as RFC 9110 §8.4.1.2 defines
// it), or none ("identity"), where a body that starts with gzip's magic bytes is gunzipped anyway
// (some SDKs label gzip bodies as form data). Any other coding is a 415 naming Content-Encoding.
// A body in another charset than UTF-8 is decoded to UTF-8 (decodeBody: a 415 naming Content-Type
// for a charset it does not read); a UTF-8 byte order mark starting the body is dropped.
func (c *Collector) readBody(r *http.Request, kind string) ([]byte, error) {
	limit := c.cfg.MaxBatchBytes
	if kind != "batch" {
		limit = c.cfg.MaxEventBytes
	}
	coding := strings.ToLower(strings.TrimSpace(strings.Join(r.Header.Values("Content-Encoding"), ",")))
	switch coding {
	case "", "identity", "gzip", "x-gzip", "deflate":
	default:
		return nil, &requestError{http.StatusUnsupportedMediaType, "Content-Encoding",
			fmt.Sprintf("Content-Encoding %q is not supported: send gzip, deflate or an uncompressed body", coding)}
	}
	// A body over the limit is a 413 (RFC 9110 §15.5.14); one whose Content-Length already says
	// so is refused before any of it is read.
	tooLarge := &requestError{http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("body larger than %d bytes", limit)}
	if r.ContentLength > int64(limit) {
		return nil, tooLarge
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	switch {
	case ReadTimedOut(err):
		return nil, &requestError{http.StatusRequestTimeout, "body", ErrBodyTimeout.Error()}
	case ClientClosed(err):
		return nil, &requestError{StatusClientClosed, "body", ErrClientClosed.Error()}
	case err != nil:
		return nil, &requestError{http.StatusBadRequest, "body", "read body: " + err.Error()}
	}
	if len(raw) > limit {
		return nil, tooLarge
	}
	if (coding == "" || coding == "identity") && Gzipped(raw) {
		coding = "gzip"
	}
	body := raw
	if coding != "" && coding != "identity" {
		var zr io.Reader
		if coding == "deflate" {
			zr, err = zlib.NewReader(bytes.NewReader(raw))
		} else {
			zr, err = gzip.NewReader(bytes.NewReader(raw))
		}
		if err == nil {
			body, err = io.ReadAll(io.LimitReader(zr, int64(limit)+1))
		}
		if err != nil {
			return nil, &requestError{http.StatusBadRequest, "body", fmt.Sprintf("invalid %s body: %v", coding, err)}
		}
		if len(body) > limit {
			return nil, tooLarge
		}
	}
	// A body in another charset, labelled (Content-Type's charset) or told by its byte order
	// mark, is decoded to UTF-8 (decodeBody). Bytes that are not UTF-8 in a UTF-8 body are no
	// reason to refuse it: inside a string they are read as U+FFFD, as encoding/json reads them,
	// or refuse the one event whose id holds them (see jsonScanner.id); anywhere else they are
	// not JSON.
	body, err = decodeBody(r.Header.Get("Content-Type"), body, limit)
	if err != nil {
		return nil, err
	}
	return TrimByteOrderMark(body), nil // .NET's and PowerShell's UTF-8 writers start with one
}

// ErrBodyTimeout is what a client is told, with 408 Request Timeout, when its request's body did
// not arrive within the HTTP server's read timeout (http.Server.ReadTimeout, --http-read-timeout):
// the read error itself names the connection's addresses, which are no business of the client.
var ErrBodyTimeout = errors.New("request body: not received within the read timeout (--http-read-timeout)")

// BodyOfGet returns why r is refused when it is a GET or HEAD whose head declares a body
// (Content-Length over 0, or a Transfer-Encoding), to be answered 400 naming "body"; nil for any
// other request. Content in a GET has no defined meaning (RFC 9110 §9.3.1, which notes that
// some servers reject such a request and close the connection, as it may be request
// smuggling; CloudFront answers it 403). An API that refuses every input it would otherwise
// ignore (a parameter a query does not take) refuses it too: a client that sent its query in a
// GET's body, as Elasticsearch takes one, would otherwise get an answer to a question it did not
// ask. Refused from the head, the body is never waited for: net/http would read it before
// writing the answer, and a client that declared more than it sent got the answer after the
// read timeout (tester F6).
func BodyOfGet(r *http.Request) error {
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead || r.ContentLength == 0:
		return nil
	case r.ContentLength > 0:
		return fmt.Errorf("a %s request takes no body, and this one declares one (Content-Length: %d): send it without", r.Method, r.ContentLength)
	}
	return fmt.Errorf("a %s request takes no body, and this one declares one (Transfer-Encoding: %s): send it without", r.Method, strings.Join(r.TransferEncoding, ", "))
}

// StatusClientClosed is the status a request is answered and counted with when its client went
// away before its answer (nginx's 499, "client closed request"): what is written reaches no one.
const StatusClientClosed = 499

// ErrClientClosed is what a request whose client closed the connection before its body's end is
// answered with (StatusClientClosed, to no one: it is for the logs and the request's count).
var ErrClientClosed = errors.New("request body: the client closed the connection before its end")

// ClientClosed reports whether err, from reading a request's body, is the client gone before the
// body's end: the connection closed (io.ErrUnexpectedEOF, short of Content-Length or of a chunked
// body's last chunk) or reset.
func ClientClosed(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// ReadTimedOut reports whether err, from reading a request's body, is the connection's read
// deadline passing, which is how http.Server's ReadTimeout stops a body that stalls.
func ReadTimedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// trackingRequest is a parsed tracking call: its events and the batch-level fields.
type trackingRequest struct {
	writeKey string
	sentAt   string
	// sentAtJSON and context are the batch's sentAt and context as sent, given to events that
	// have none; nil when absent.
	sentAtJSON, context []byte
	// callType is the call type of a single call, set by its endpoint: /v1/track is a track
	// whatever type its body names, as in Segment's HTTP API; "" for a batch, whose events name
	// their own.
	callType string
	events   [][]byte // each event as sent
}

// tooManyEvents stops reading a batch at its limit+1st item: more items than bytes of valid
// events can hold (maxBatchEvents).
type tooManyEvents struct{ limit, bytes int }

func (e *tooManyEvents) Error() string {
	return fmt.Sprintf("batch has more than %d items, more than %d bytes of valid events hold (the smallest valid event is %s): some are not events; send only events", e.limit, e.bytes, smallestEvent)
}

// errDuplicateBatch stops reading a body at its second batch member. Other repeated members are
// read as encoding/json reads them, the last one winning; two lists of events are refused rather
// than one of them dropped or both taken.
var errDuplicateBatch = errors.New("batch is given twice; send one array of events")

// batchSpelling stops reading a body at a member named batch in other letter case ("BATCH"):
// encoding/json, which Segment's own servers read with, takes it for the batch, so taking the
// exact member alone, or neither, would drop a list of events without a word (tester 30's F5).
type batchSpelling struct{ name string }

func (e *batchSpelling) Error() string {
	return fmt.Sprintf("%q is not a member of a batch body: the list of events is named batch, in lower case; send one array of events named batch", e.name)
}

// parseRequest reads a tracking call's body in one pass. A body that is not a JSON object, or a
// batch without an array of events, is an error; events that are not objects are kept, and
// rejected one by one. A batch of more items than max(its length, DefaultMaxBatchBytes) bytes of
// valid events hold (maxBatchEvents) is refused whole: no batch of valid events is, and a short
// batch with a few items that are not events still has them rejected one by one.
func parseRequest(body []byte, kind string) (*trackingRequest, error) {
	tooMany := &tooManyEvents{bytes: max(len(body), DefaultMaxBatchBytes)}
	tooMany.limit = maxBatchEvents(tooMany.bytes)
	s := &jsonScanner{data: body}
	malformed := func(err error) error {
		return &requestError{http.StatusBadRequest, "body", "malformed JSON: " + err.Error()}
	}
	if s.peek() != '{' {
		if err := notJSON(body); err != nil { // a text or CSV body (tester 48's F4)
			return nil, &requestError{http.StatusBadRequest, "body", err.Error() + "; the body must be a JSON object"}
		}
		if _, err := s.value(); err != nil {
			var tooDeep *depthError
			if errors.As(err, &tooDeep) {
				return nil, &requestError{http.StatusBadRequest, "body", fmt.Sprintf("body: %v (Waymark's limit)", err)}
			}
			return nil, malformed(err)
		}
		return nil, &requestError{http.StatusBadRequest, "body", "malformed JSON: the body must be a JSON object"}
	}
	req := &trackingRequest{}
	batch := kind == "batch"
	hasBatch := false
	readMember := func(name string) error {
		switch {
		case name == "writeKey":
			return s.str("writeKey", &req.writeKey)
		case name == "sentAt" && batch:
			if s.peek() != '"' {
				req.sentAtJSON = nil                // a repeated member: the last copy wins, null included
				return s.str("sentAt", &req.sentAt) // null, or a type error
			}
			raw, escaped, err := s.rawString()
			req.sentAt, req.sentAtJSON = unquote(raw, escaped), s.data[s.pos-len(raw)-2:s.pos]
			return err
		case name == "context" && batch:
			raw, err := s.value()
			req.context = nil // a repeated member: the last copy wins, null included
			if err == nil && string(raw) != "null" {
				req.context = raw
				if bad := checkContext(raw); bad != nil {
					s.mistyped(bad) // refuses the request, as a bad batch member of any type
				}
			}
			return err
		case name == "integrations" && batch:
			// Not read (no destinations to route to), but the batch's own member all the
			// same: an object, as Segment's HTTP API defines it.
			return s.members("integrations", func([]byte) error { _, err := s.value(); return err })
		case batch && name != "batch" && strings.EqualFold(name, "batch"):
			return &batchSpelling{name}
		case name == "batch" && batch:
			if hasBatch {
				return errDuplicateBatch
			}
			if s.peek() != '[' {
				return s.wrongType("batch", "an array of events")
			}
			hasBatch = true
			return s.array(func() error {
				if len(req.events) == tooMany.limit {
					return tooMany
				}
				// An event nested too deep is kept, for prepare to reject alone
				// (objectMembers finds the depth again), as any other event of a batch that
				// cannot be used: its neighbours are stored (tester 30's F1).
				raw, err := s.valueReadPastDepth()
				req.events = append(req.events, raw)
				return err
			})
		}
		_, err := s.value()
		return err
	}
	err := s.object(func(nameBytes []byte) error {
		field := string(nameBytes)
		if field != "batch" {
			s.replaced(field) // the last copy of a member is the member
		}
		start, depth := s.valueStart(), s.depth
		err := readMember(field)
		if !errors.As(err, new(*depthError)) {
			return err
		}
		// A member nested too deep, read past so the members after it (a writeKey) are read.
		// A single call's is its event's: prepare rejects the event, naming the member. A
		// batch member Waymark reads (writeKey, sentAt, context, integrations) refuses the
		// batch, as one of the wrong type does, and its events are dead-lettered; any other
		// member of a batch is not read.
		if err := s.skipDeep(start, depth); err != nil {
			return err
		}
		if batch && slices.Contains([]string{"writeKey", "sentAt", "context", "integrations"}, field) {
			s.mistyped(&InvalidError{Reason: ReasonInvalidField, Field: field, Err: fmt.Errorf("JSON nested deeper than %d levels (Waymark's limit)", maxJSONDepth)})
		}
		return nil
	})
	if err == nil {
		err = s.end()
	}
	var spelling *batchSpelling
	switch {
	case errors.As(err, new(*tooManyEvents)) || err == errDuplicateBatch:
		return nil, &requestError{http.StatusBadRequest, "batch", err.Error()}
	case errors.As(err, &spelling):
		return nil, &requestError{http.StatusBadRequest, spelling.name, err.Error()}
	case err != nil:
		return nil, malformed(err)
	case s.typeErr() != nil && s.typeErr().Field == "batch" || batch && !hasBatch:
		return nil, &requestError{http.StatusBadRequest, "batch", "batch must be an array of events"}
	case s.typeErr() != nil:
		// The request with its events: handle dead-letters them before it answers 400.
		if !batch {
			req.events = [][]byte{body}
		}
		bad := s.typeErr()
		return req, &requestError{http.StatusBadRequest, bad.Field, fmt.Sprintf("%s: %v", bad.Field, bad.Err)}
	}
	if !batch {
		req.callType = kind
		req.events = [][]byte{body}
	}
	return req, nil
}

// headerWriteKey takes the write key from Basic auth (key as user name, see BasicAuthUser), else
// X-Write-Key; "" when neither is sent (the key may then be in the body).
func headerWriteKey(r *http.Request) string {
	if user := BasicAuthUser(r); user != "" {
		return user
	}
	return r.Header.Get("X-Write-Key")
}

// BasicAuthUser returns the user name of the request's Basic Authorization header (RFC 7617), ""
// when there is none or it cannot be read. It reads what Segment's libraries and curl send
// ("key:", base64), and what some SDKs and hand-written clients send too: the key without its
// colon, base64 without padding, the scheme in any case. The password is not returned: a key is
// the user name (Segment's HTTP API).
func BasicAuthUser(r *http.Request) string {
	if user, _, ok := r.BasicAuth(); ok {
		return user
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return ""
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(token), "="))
	if err != nil {
		return ""
	}
	user, _, _ := strings.Cut(string(b), ":")
	return user
}

func (c *Collector) allow(w http.ResponseWriter, key string, events int) error {
	if c.cfg.RateLimit <= 0 {
		return nil
	}
	l, _ := c.limiters.LoadOrStore(key, rate.NewLimiter(rate.Limit(c.cfg.RateLimit), c.cfg.RateBurst))
	lim := l.(*rate.Limiter)
	now := time.Now()
	// A batch of more events than the burst passes when the burst is there whole, and the events
	// beyond it are a debt that later calls wait for (reservations the limiter counts, never
	// cancelled): refused, it could never pass, and a client's retries would end in losing it.
	res := lim.ReserveN(now, min(events, c.cfg.RateBurst))
	if res.OK() && res.DelayFrom(now) == 0 {
		for rest := events - c.cfg.RateBurst; rest > 0; rest -= c.cfg.RateBurst {
			lim.ReserveN(now, min(rest, c.cfg.RateBurst))
		}
		return nil
	}
	wait := time.Second
	if res.OK() {
		wait = res.DelayFrom(now)
		res.CancelAt(now)
	}
	secs := int(wait.Seconds()) + 1
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(wait).Unix()+1, 10))
	return &requestError{http.StatusTooManyRequests, "writeKey", fmt.Sprintf("rate limit of %g events/s for this write key exceeded", c.cfg.RateLimit)}
}

// rejectedEvent is an event of a request that cannot be used, with why.
type rejectedEvent struct {
	index  int
	reason string
	field  string // the member at fault within the event ("timestamp"), "" for the whole event
	// ofBatch says field is the batch's own member, not the event's: the batch's sentAt, which
	// the event took because it sent none. A sentAt that is no time refuses the events that
	// take it, each dead-lettered (nothing is lost), not the request: the events' own times may
	// still be read (case 11).
	ofBatch bool
	err     error
	raw     []byte
	key     string
}

// preparedEvent is an accepted event ready for Kafka.
type preparedEvent struct {
	index int // in the request
	key   string
	raw   []byte
	// future says its client's time lay more than MaxFutureTimestamp after it was received and
	// was set to the receive time (SkewCorrected).
	future bool
	// ignored are its cosmetic members of the wrong type, read as absent, and its dotted keys
	// dropped for the nested member they name (Event.Ignored).
	ignored []*InvalidError
}

// prepare stamps each event with receivedAt, the batch's sentAt and context where it has none, a
// messageId where the client sent none, and the skew-corrected timestamp; then validates it.
// Every member the client sent is kept byte for byte.
func (c *Collector) prepare(req *trackingRequest, source string, now time.Time) ([]preparedEvent, []rejectedEvent) {
	var accepted []preparedEvent
	var rejected []rejectedEvent
	received := quoteASCII(now.Format(time.RFC3339Nano))
	size := 0
	for _, raw := range req.events {
		size += len(raw) + 128
	}
	// The events are written one after another into one buffer; each keeps its own part.
	buf := make([]byte, 0, size)
	var members []member
	// Reused from event to event: appendObject copies what they hold.
	skipBuf, extraBuf := make([]string, 0, 8), make([]field, 0, 8)
	repeats := make(Repeats, len(req.events))
	for i, raw := range req.events {
		var bad *InvalidError
		if len(raw) > c.cfg.MaxEventBytes {
			bad = &InvalidError{Reason: ReasonTooLarge, Err: fmt.Errorf("event of %d bytes is larger than %d", len(raw), c.cfg.MaxEventBytes)}
		} else if m, err := objectMembers(raw, members[:0]); err != nil {
			bad = notAnEvent(m, err)
		} else {
			members = m
		}
		if bad != nil {
			rejected = append(rejected, rejectedEvent{index: i, reason: bad.Reason, field: bad.Field, err: bad, raw: raw})
			continue
		}
		skip, extra := stamp(members, raw, req, source, Receipt(now, strconv.Itoa(i)), repeats, skipBuf[:0], extraBuf[:0])
		skip, extra, future := correctSkew(members, req.sentAt, now, skip, extra)
		extra = append(extra, field{"receivedAt", received})
		start := len(buf)
		buf = appendObject(buf, raw, members, skip, extra)
		out := buf[start:len(buf):len(buf)]
		if limit := c.cfg.MaxEventBytes + MaxStampBytes; len(out) > limit {
			err := &InvalidError{Reason: ReasonTooLarge, Err: fmt.Errorf("event of %d bytes with the batch's sentAt and context and the collector's stamps is larger than %d", len(out), limit)}
			rejected = append(rejected, rejectedEvent{index: i, reason: ReasonTooLarge, err: err, raw: out})
			continue
		}
		key, ignored, err := check(out, now)
		if err != nil {
			var field string
			var ie *InvalidError
			if errors.As(err, &ie) {
				field = ie.Field
			}
			ofBatch := field == "sentAt" && lookup(members, "sentAt") == nil && req.sentAtJSON != nil
			rejected = append(rejected, rejectedEvent{index: i, reason: RejectReason(err), field: field, ofBatch: ofBatch, err: err, raw: out, key: key})
			continue
		}
		accepted = append(accepted, preparedEvent{index: i, key: key, raw: out, future: future, ignored: ignored})
	}
	return accepted, rejected
}

// notAnEvent is the rejection of an event objectMembers could not read (err), with the members it
// read: JSON nested deeper than maxJSONDepth names the member it is in, whose value parseRequest
// read past; anything else is not a JSON object.
func notAnEvent(members []member, err error) *InvalidError {
	var tooDeep *depthError
	if errors.As(err, &tooDeep) && len(members) > 0 {
		return &InvalidError{Reason: ReasonInvalidJSON, Field: string(members[len(members)-1].name), Err: fmt.Errorf("%v (Waymark's limit)", tooDeep)}
	}
	return &InvalidError{Reason: ReasonInvalidJSON, Err: errors.New("event is not a JSON object")}
}

// stamp returns the members to drop from an event and the ones to add: a messageId derived from
// the event's bytes when it has none or a placeholder (so a retried event that states its time
// keeps its id; one that states none is new at each receipt, named by receipt; the call type it
// is stored with and its repeat among the request's events are hashed too: see DerivedMessageID
// and IDParts), the call type of a single call (its endpoint's, replacing any type the body
// names: Segment's HTTP API takes the type from the endpoint), the batch's sentAt when it has
// none, and the batch's context: as it is when the event has none (or null), else merged into
// the event's (mergeContext). writeKey and receivedAt are dropped: the key is a secret, and
// receivedAt is the collector's to set.
func stamp(members []member, raw []byte, req *trackingRequest, source, receipt string, repeats Repeats, skip []string, extra []field) ([]string, []field) {
	skip = append(skip, "writeKey", "receivedAt")
	if m := lookup(members, "messageId"); m == nil || string(m.value) == "null" || placeholderJSON(m.value) {
		stated := func(name string) bool { m := lookup(members, name); return m != nil && string(m.value) != "null" }
		p := IDParts{CallType: req.callType, Receipt: receipt, BatchContext: req.context}
		if stated("timestamp") || stated("originalTimestamp") {
			p.Receipt = ""
		}
		id := DerivedMessageID(source, raw, p)
		if p.Repeat = repeats.Next(id); p.Repeat > 0 {
			id = DerivedMessageID(source, raw, p)
		}
		skip = append(skip, "messageId")
		extra = append(extra, field{"messageId", quoteASCII(id)})
	}
	if req.callType != "" {
		skip = append(skip, "type")
		extra = append(extra, field{"type", quoteASCII(req.callType)})
	}
	return withBatch(members, req, skip, extra)
}

// withBatch returns the members to drop from an event of a batch and the ones to add so that it
// carries its batch's: the batch's sentAt when it has none, and the batch's context, as it is
// when the event has none (or null), else merged into the event's (mergeContext). It is the one
// rule of /v1/batch, applied by the collector (stamp) and by a replay of batch bodies
// (readSegment).
func withBatch(members []member, req *trackingRequest, skip []string, extra []field) ([]string, []field) {
	// An event's sentAt of null is none (Decode reads it so): it takes the batch's (tester 31's F3).
	if own := lookup(members, "sentAt"); (own == nil || string(own.value) == "null") && req.sentAtJSON != nil {
		if own != nil {
			skip = append(skip, "sentAt")
		}
		extra = append(extra, field{"sentAt", req.sentAtJSON})
	}
	if req.context != nil {
		switch own := lookup(members, "context"); {
		case own == nil:
			extra = append(extra, field{"context", req.context})
		case string(own.value) == "null":
			skip = append(skip, "context")
			extra = append(extra, field{"context", req.context})
		default:
			if merged := mergeContext(own.value, req.context); merged != nil {
				skip = append(skip, "context")
				extra = append(extra, field{"context", merged})
			}
		}
	}
	return skip, extra
}

// mergeContext returns an event's own context with the members of its batch's context that it
// lacks added after its own, each copied as sent; nil when it lacks none, or when either is not
// an object (an event's context of another type is refused by check). Segment's HTTP API merges
// a batch's context "with any context inside each of the items in the batch"; the item's own
// members win, whole: the merge is of the context's top-level members, not deep, because each
// (campaign, page, device, traits) describes one thing, and a campaign made of the item's
// utm_source and the batch's utm_medium would be one nobody ran. Of a member the batch's
// context repeats, the last is taken, as everywhere.
func mergeContext(own, batch []byte) []byte {
	ownMembers, err1 := objectMembers(own, nil)
	batchMembers, err2 := objectMembers(batch, nil)
	if err1 != nil || err2 != nil {
		return nil
	}
	var out []byte
	n := len(ownMembers)
	for i, m := range batchMembers {
		if lookup(ownMembers, string(m.name)) != nil || lookup(batchMembers[i+1:], string(m.name)) != nil {
			continue
		}
		if out == nil {
			out = append(make([]byte, 0, len(own)+len(batch)), own[:len(own)-1]...) // up to its '}'
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, batch[m.start:m.end]...)
		n++
	}
	if out == nil {
		return nil
	}
	return append(out, '}')
}

// correctSkew keeps the client's timestamp as originalTimestamp and sets timestamp to the event
// time eventTime gives the message received at received: the client's clock time shifted for its
// skew, receivedAt − sentAt (skewShift; one offset for the whole batch, so the device's own order
// is kept), and received when it lies more than MaxFutureTimestamp after it (future). A message
// that states both timestamp and originalTimestamp keeps its timestamp (corrected already: see
// eventTime). A client that sent only originalTimestamp gets the timestamp stamped when it
// differs. It is the rule DecodeClient applies to a message produced straight to Kafka. It returns
// the members to skip and add; a time that cannot be read changes nothing (check reports it).
func correctSkew(members []member, batchSentAt string, received time.Time, skip []string, extra []field) ([]string, []field, bool) {
	// read reads a time member: absent when missing or null, ok false when it is no time.
	read := func(name string) (t time.Time, m *member, ok bool) {
		if m = lookup(members, name); m == nil || string(m.value) == "null" {
			return time.Time{}, nil, true
		}
		text, ok := stringOf(m.value)
		if !ok {
			return time.Time{}, m, false
		}
		t, err := ParseTimestamp(text)
		return t, m, err == nil
	}
	ts, tsMember, ok1 := read("timestamp")
	orig, origMember, ok2 := read("originalTimestamp")
	if !ok1 || !ok2 || (tsMember == nil && origMember == nil) {
		return skip, extra, false
	}
	var st statedTimes
	st.timestamp, st.hasTimestamp = ts, tsMember != nil
	st.original, st.hasOriginal = orig, origMember != nil
	if m := lookup(members, "sentAt"); m != nil && string(m.value) != "null" {
		var ok bool
		if st.sentAt, _, ok = read("sentAt"); !ok {
			return skip, extra, false
		}
	} else if batchSentAt != "" { // none, or null: the batch's, as withBatch stamps it
		var err error
		if st.sentAt, err = ParseTimestamp(batchSentAt); err != nil {
			return skip, extra, false
		}
	}
	stated := orig
	if st.hasTimestamp {
		stated = ts
		if !st.hasOriginal {
			if lookup(members, "originalTimestamp") != nil {
				skip = append(skip, "originalTimestamp") // a null one: none, as Decode reads it
			}
			extra = append(extra, field{"originalTimestamp", tsMember.value})
		}
	}
	corrected, _, future := eventTime(st, received, false)
	if !corrected.Equal(stated) {
		if lookup(members, "timestamp") != nil {
			skip = append(skip, "timestamp") // the client's, or a null one
		}
		extra = append(extra, field{"timestamp", quoteASCII(corrected.UTC().Format(time.RFC3339Nano))})
	}
	return skip, extra, future
}

// produce writes accepted events and dead letters, waiting for acknowledgement from all in-sync
// replicas, within ProduceTimeout.
func (c *Collector) produce(ctx context.Context, source string, accepted []preparedEvent, rejected []rejectedEvent) error {
	sourceHeader := kafka.Header{Key: HeaderSource, Value: []byte(source)}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ProduceTimeout)
	defer cancel()
	start := time.Now()
	defer func() { c.metrics.produceSeconds.Observe(time.Since(start).Seconds()) }()
	if len(rejected) > 0 {
		dead := make([]kafka.Message, len(rejected))
		for i, rj := range rejected {
			dead[i] = newDeadLetter([]byte(rj.key), rj.raw, []kafka.Header{sourceHeader}, rj.reason, rj.err)
		}
		if err := c.dlq.WriteMessages(ctx, dead...); err != nil {
			return fmt.Errorf("write %d dead letters: %w", len(dead), err)
		}
	}
	if len(accepted) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(accepted))
	for i, a := range accepted {
		msgs[i] = kafka.Message{Key: []byte(a.key), Value: a.raw, Headers: []kafka.Header{sourceHeader}}
	}
	if err := c.producer.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("produce %d events: %w", len(msgs), summarizeWriteErrors(err))
	}
	return nil
}

func (c *Collector) unavailable(w http.ResponseWriter, r *http.Request, err error) error {
	if r.Context().Err() == nil { // not a client that went away: Kafka failed
		c.setKafka(err)
	}
	c.log.Warn("kafka unavailable, answering 503", "err", err)
	w.Header().Set("Retry-After", "5")
	WriteError(w, http.StatusServiceUnavailable, "", "events could not be stored durably; retry")
	return err
}

func (c *Collector) fail(w http.ResponseWriter, err error) error {
	var re *requestError
	if !errors.As(err, &re) {
		re = &requestError{http.StatusBadRequest, "", err.Error()}
	}
	switch re.status {
	case http.StatusUnsupportedMediaType:
		if re.field == "Content-Encoding" {
			w.Header().Set("Accept-Encoding", "gzip, deflate") // RFC 9110 §15.5.16
		}
	case http.StatusRequestEntityTooLarge, http.StatusRequestTimeout:
		// The rest of the body is left unread, and the connection closed (RFC 9110 §15.5.14
		// allows it): otherwise Go's server reads and drops up to 256 KiB of it before it
		// answers, so the 413 waited for a client that sends its body slowly, or never. (serve
		// reads and drops the rest after the answer, earlyAnswers in cmd/waymark, so that a
		// client that writes its whole body before it reads gets the 413, not a reset.) A 408
		// closes it too (RFC 9110 §15.5.9): the read deadline has passed.
		w.Header().Set("Connection", "close")
	}
	WriteError(w, re.status, re.field, re.message)
	return err
}

// settings serves the document analytics.js loads from its CDN, pointing it back at this
// collector, so `cdnURL` can be set to Waymark.
func (c *Collector) settings(w http.ResponseWriter, r *http.Request, key string) {
	SetCORS(w, r)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		WriteError(w, http.StatusMethodNotAllowed, "method", "settings are read with GET")
		return
	}
	if err := BodyOfGet(r); err != nil {
		WriteError(w, http.StatusBadRequest, "body", err.Error())
		return
	}
	if _, ok := c.cfg.WriteKeys[key]; !ok {
		WriteError(w, http.StatusNotFound, "writeKey", "unknown write key")
		return
	}
	apiHost, proto := c.apiHost, c.protocol
	if apiHost == "" {
		// No public address configured: the request's Host, which a client chooses. It must be a
		// plain host, so nothing but a host name is ever reflected; and the answer must not be
		// cached, nor reused for another Host, or one request with a hostile Host would point
		// every visitor's analytics.js (their events, traits, emails) at that host through a
		// cache in front (nginx's default key leaves the Host out).
		if !plainHost(r.Host) {
			WriteError(w, http.StatusBadRequest, "Host", "the Host header is no plain host[:port]; set --public-url to answer with a fixed one")
			return
		}
		apiHost, proto = r.Host+"/v1", "http"
		if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
			proto = "https"
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Add("Vary", "Host, X-Forwarded-Proto")
	} else {
		// The same answer for every request, as Segment's CDN serves its settings: a cache may
		// keep it for a few minutes.
		w.Header().Set("Cache-Control", "public, max-age=300")
	}
	enabled := map[string]any{"__default": map[string]any{"enabled": true, "integrations": map[string]any{}}}
	writeJSON(w, http.StatusOK, map[string]any{
		"integrations": map[string]any{
			"Segment.io": map[string]any{
				"apiKey":                 key,
				"apiHost":                apiHost,
				"protocol":               proto,
				"unbundledIntegrations":  []string{},
				"addBundledMetadata":     true,
				"maybeBundledConfigIds":  map[string]any{},
				"versionSettings":        map[string]any{"version": "4.4.7", "componentTypes": []string{"browser"}},
				"deliveryStrategy":       map[string]any{"strategy": "standard"},
				"bundledConfigIds":       []string{},
				"unbundledConfigIds":     []string{},
				"defaultCoreConfigIds":   []string{},
				"defaultBundledIntegIds": []string{},
			},
		},
		"plan":                      map[string]any{"track": enabled, "identify": enabled, "group": enabled},
		"edgeFunction":              map[string]any{},
		"analyticsNextEnabled":      true,
		"middlewareSettings":        map[string]any{},
		"enabledMiddleware":         map[string]any{},
		"metrics":                   map[string]any{"sampleRate": 0},
		"legacyVideoPluginsEnabled": false,
		"remotePlugins":             []any{},
	})
}

// SetCORS lets the page at the request's Origin read the answer (a browser's analytics.js posts
// from the shop's own origin), with credentials; it does nothing for a request without Origin.
func SetCORS(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "authorization, content-type, x-write-key")
	h.Set("Access-Control-Max-Age", "86400")
	addVary(h, "Origin")
}

// addVary adds field to h's Vary once: an answer set up twice (a preflight passes SetCORS on two
// layers) sent "Vary: Origin" twice (tester 28's F7).
func addVary(h http.Header, field string) {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), field) {
				return
			}
		}
	}
	h.Add("Vary", field)
}

// batchResponse is the answer to a tracking call whose events were taken or dead-lettered: how
// many were accepted, the events rejected (each dead-lettered) and, of the accepted ones, the
// cosmetic members ignored (Event.Ignored: stored without them), each with the event's index,
// the reason and the member's path.
type batchResponse struct {
	Success  bool        `json:"success"`
	Accepted int         `json:"accepted"`
	Rejected []rejection `json:"rejected,omitempty"`
	Ignored  []rejection `json:"ignored,omitempty"`
}

type rejection struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
	Field  string `json:"field,omitempty"`
	Error  string `json:"error"`
}

type errorBody struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
	Field   string `json:"field,omitempty"`
	Path    string `json:"path,omitempty"` // the path of a request to no endpoint
}

// WriteError answers w with status and the tracking API's JSON error body, {"success": false,
// "error": message, "field": field}, field left out when "".
func WriteError(w http.ResponseWriter, status int, field, message string) {
	writeJSON(w, status, errorBody{Error: message, Field: field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type collectorMetrics struct {
	requests       *prometheus.CounterVec
	seconds        *prometheus.HistogramVec
	events         *prometheus.CounterVec
	dead           *prometheus.CounterVec
	future         prometheus.Counter
	bytes          prometheus.Counter
	produceSeconds prometheus.Histogram
}

func newCollectorMetrics(reg prometheus.Registerer) (*collectorMetrics, error) {
	m := &collectorMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_collector_requests_total", Help: "Requests to the tracking API (tracking calls, settings, paths under /v1/ it has not), by endpoint and HTTP status code.",
		}, []string{"endpoint", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "waymark_collector_request_duration_seconds", Help: "Time to answer a request to the tracking API, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"endpoint"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "waymark_collector_events_total", Help: "Events received, by outcome (accepted, rejected) and rejection reason.",
		}, []string{"outcome", "reason"}),
		dead:   newDeadLetterMetric("collector"),
		future: newFutureTimestampMetric("collector"),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "waymark_collector_body_bytes_total", Help: "Request body bytes after decompression.",
		}),
		produceSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "waymark_collector_produce_duration_seconds", Help: "Time for Kafka to acknowledge a request's events.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.seconds, m.events, m.dead, m.future, m.bytes, m.produceSeconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register collector metrics: %w", err)
			}
		}
	}
	return m, nil
}
