package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/waymark-dev/waymark/ingest"
	"github.com/waymark-dev/waymark/sessionize"
	"github.com/waymark-dev/waymark/store"
)

// envName is the environment variable that backs a flag: WAYMARK_ and the flag name in upper case
// with dashes as underscores.
func envName(flagName string) string {
	return "WAYMARK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagSet is a command's flags: a flag.FlagSet whose flags are read from the command line, then
// from their environment variables, and whose errors name each flag as its value was given.
type flagSet struct {
	*flag.FlagSet
	synopsis string
	fromEnv  map[string]bool // the flags whose value came from the environment
}

// newFlagSet returns the flags of the command name; synopsis heads its help, after "waymark ".
func newFlagSet(name, synopsis string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), synopsis: synopsis, fromEnv: map[string]bool{}}
	// parseFlags reports each problem itself, in one line naming the flag; the flag package's own
	// report (the flag with one dash, then the whole help, to standard error) is not printed.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// help is the command's help: its synopsis, and each flag with its environment variable.
func (fs *flagSet) help() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: waymark %s\n", fs.synopsis)
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			b.WriteString("\nFlags (each can also be set by the environment variable shown):\n")
			first = false
		}
		def := ""
		if f.DefValue != "" && !(isBoolFlag(f.Value) && f.DefValue == "false") { // a boolean flag is off unless given
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(&b, "  --%s  [%s]\n      %s%s\n", f.Name, envName(f.Name), f.Usage, def)
	})
	return b.String()
}

// ref names a flag in an error as its value was given: --name, or WAYMARK_NAME (--name) when the
// value came from the environment.
func (fs *flagSet) ref(name string) string {
	if fs.fromEnv[name] {
		return envName(name) + " (--" + name + ")"
	}
	return "--" + name
}

// errorf returns an error about the named flag's value: "REF: problem", REF as ref names it.
func (fs *flagSet) errorf(name, format string, args ...any) error {
	return &flagError{ref: fs.ref(name), err: fmt.Errorf(format, args...)}
}

// given reports whether the named flag was set, on the command line or by its environment
// variable, once the flags are parsed.
func (fs *flagSet) given(name string) bool {
	set := fs.fromEnv[name]
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// flagError is an error about a flag's value, naming the flag as ref does. It is one line: a
// control character in the problem (a newline in a file name that another package's error
// echoes) is written as its Go escape, \n.
type flagError struct {
	ref string
	err error
}

func (e *flagError) Error() string {
	msg := e.err.Error()
	if strings.IndexFunc(msg, unicode.IsControl) < 0 {
		return e.ref + ": " + msg
	}
	var b strings.Builder
	b.WriteString(e.ref + ": ")
	for _, r := range msg {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r) // '\n'
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (e *flagError) Unwrap() error { return e.err }

// maxShownValue is how much of a value quoteValue shows, in characters.
const maxShownValue = 64

// quoteValue is a flag's value as errors show it: quoted as by %q, so that a newline or another
// control character shows as its escape, and cut after maxShownValue characters with "…", so
// that a 100 KB value is not echoed in full. Every error that repeats a value given shows it so.
func quoteValue(v string) string {
	if i := runeOffset(v, maxShownValue); i < len(v) {
		return strconv.Quote(v[:i]) + "…"
	}
	return strconv.Quote(v)
}

// runeOffset returns the byte offset of the nth rune of s, or len(s) when s has fewer.
func runeOffset(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

// seeHelp points at the command's help, for errors in its flags.
func (fs *flagSet) seeHelp() string { return "'waymark " + fs.Name() + " -h' lists the flags" }

// helpRequest is the answer to -h, --help or `waymark help COMMAND`: not a failure but text for
// standard output (run prints it; the status is 0).
type helpRequest struct {
	text string
	// vars are the environment variables of the command's flags (envName), when its flags are a
	// flagSet: strayVariables reads every command's.
	vars []string
}

func (h *helpRequest) Error() string { return "help requested" }

// isHelpFlag reports whether arg asks for help as the flag package reads it.
func isHelpFlag(arg string) bool {
	return arg == "-h" || arg == "--h" || arg == "-help" || arg == "--help"
}

// parseFlags parses args, then fills every flag not given on the command line from its
// environment variable. -h or --help is a *helpRequest with the command's help. Errors name the
// flag as its value was given (flagSet.ref), in one line. An argument that is not a flag is an
// error: the flag package stops reading flags there and would ignore every flag after it, so the
// command would answer another question than the one asked. A flag given twice keeps its last
// value, as in every Go and getopt program (scripts append overrides to a base command line).
func parseFlags(fs *flagSet, args []string) error {
	// The flag package's errors are text that names the flag with one dash; each value is set
	// through a setter instead, which keeps its error naming the flag as given.
	var failed error
	fs.VisitAll(func(f *flag.Flag) { f.Value = setter{Value: f.Value, fs: fs, flag: f, failed: &failed} })
	if err := fs.Parse(args); err != nil {
		switch {
		case errors.Is(err, flag.ErrHelp):
			var vars []string
			fs.VisitAll(func(f *flag.Flag) { vars = append(vars, envName(f.Name)) })
			return &helpRequest{text: fs.help(), vars: vars}
		case failed != nil:
			return failed
		}
		return fs.syntaxError(args, err)
	}
	if fs.NArg() > 0 {
		return fs.strayError(args)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(envName(f.Name))
		if set[f.Name] || !ok || failed != nil {
			return
		}
		fs.fromEnv[f.Name] = true
		_ = f.Value.Set(v) // a failure is in failed, naming the variable
	})
	return failed
}

// setter sets a flag's value for parseFlags, keeping the first error in failed, naming the flag
// as given. A blank value is refused for a flag whose default is not blank: `--window ""` or
// --clickhouse-addr "" would otherwise silently mean the default, which is what leaving the flag
// out is for.
type setter struct {
	flag.Value
	fs     *flagSet
	flag   *flag.Flag
	failed *error
}

func (s setter) Set(v string) error {
	var err error
	if strings.TrimSpace(v) == "" && strings.TrimSpace(s.flag.DefValue) != "" {
		err = fmt.Errorf("empty value; leave it out for the default %s", s.flag.DefValue)
	} else if err = s.Value.Set(v); err != nil {
		if isBoolFlag(s.Value) { // the flag package says "parse error", strconv "invalid syntax"
			err = errors.New("not true or false")
		}
		err = fmt.Errorf("invalid value %s: %w", quoteValue(v), err)
	}
	if err != nil && *s.failed == nil {
		*s.failed = s.fs.errorf(s.flag.Name, "%w", err)
	}
	return err
}

// IsBoolFlag tells the flag package that a boolean flag needs no value.
func (s setter) IsBoolFlag() bool { return isBoolFlag(s.Value) }

func isBoolFlag(v flag.Value) bool {
	b, ok := v.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// strayError is the error for the arguments left once the flags are read: the first is no flag.
// When it follows a boolean flag and reads as true or false, it was meant as that flag's value,
// which a boolean flag takes only after "=" (the flag package reads `--json false` as --json and
// an argument "false").
func (fs *flagSet) strayError(args []string) error {
	stray := fs.Arg(0)
	if i := len(args) - fs.NArg(); i > 0 && strings.HasPrefix(args[i-1], "-") {
		name := strings.TrimPrefix(strings.TrimPrefix(args[i-1], "-"), "-")
		_, notWord := strconv.ParseBool(stray)
		if f := fs.Lookup(name); f != nil && isBoolFlag(f.Value) && notWord == nil {
			return fmt.Errorf("--%s is a true/false flag: write --%s or --%s=false, not --%s %s", name, name, name, name, stray)
		}
	}
	return fmt.Errorf("unexpected argument %s: every value is given with its flag (--name value); quote a value with spaces", quoteValue(stray))
}

// syntaxError says why the flag package stopped reading args before their end, when no value
// was refused: a flag the command does not have, a flag without its value, or a word that is no
// flag. It reads args as the flag package does, up to the first problem; err, the package's own
// error, stands when it finds none.
func (fs *flagSet) syntaxError(args []string, err error) error {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" || len(arg) < 2 || arg[0] != '-' {
			break
		}
		name := strings.TrimPrefix(arg[1:], "-")
		if name == "" || name[0] == '-' || name[0] == '=' {
			return fmt.Errorf("%q is not a flag (--name, --name=value); %s", arg, fs.seeHelp())
		}
		name, _, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		switch {
		case f == nil:
			return fmt.Errorf("unknown flag --%s; %s", name, fs.seeHelp())
		case hasValue || isBoolFlag(f.Value):
		case i+1 == len(args):
			return fmt.Errorf("--%s needs a value; %s", name, fs.seeHelp())
		default:
			i++ // its value
		}
	}
	return err
}

// kafkaFlags are the flags of commands that talk to Kafka.
type kafkaFlags struct {
	brokers       string
	devBrokerAddr string
	topic         string
	dlqTopic      string
	group         string
}

func addKafkaFlags(fs *flagSet) *kafkaFlags {
	k := &kafkaFlags{}
	checkedVar(fs, &k.brokers, "kafka-brokers", "", "comma-separated Kafka bootstrap brokers; empty: use the embedded dev broker (in memory only)", text, checkBrokers)
	checkedVar(fs, &k.devBrokerAddr, "dev-broker-addr", "127.0.0.1:9092", "address of the embedded dev broker, used when --kafka-brokers is empty", text, checkListenAddr)
	checkedVar(fs, &k.topic, "topic", "waymark.events", "Kafka topic of incoming events", text, ingest.CheckTopic)
	checkedVar(fs, &k.dlqTopic, "dlq-topic", "waymark.dlq", "Kafka topic for events that cannot be used, with the reason in a header", text, ingest.CheckTopic)
	fs.StringVar(&k.group, "group", "waymark", "Kafka consumer group")
	return k
}

// check reports what the Kafka flags cannot do together, naming the flag: events dead-lettered
// onto the topic they came from would be read again, forever, and Kafka refuses to create a
// topic whose name collides with another's (ingest.TopicsCollide).
func (k *kafkaFlags) check(fs *flagSet) error {
	switch {
	case k.dlqTopic == k.topic:
		return fs.errorf("dlq-topic", "must differ from %s %s", fs.ref("topic"), quoteValue(k.topic))
	case ingest.TopicsCollide(k.dlqTopic, k.topic):
		return fs.errorf("dlq-topic", "%s collides with %s %s: Kafka reads '.' and '_' in topic names as one", quoteValue(k.dlqTopic), fs.ref("topic"), quoteValue(k.topic))
	}
	return nil
}

// checkBrokers refuses a --kafka-brokers list with an empty entry (",,," or " "): the Kafka client
// found no broker in it only when it started. An empty value is no list: the dev broker.
func checkBrokers(s string) error {
	if s == "" {
		return nil
	}
	for _, b := range strings.Split(s, ",") {
		if strings.TrimSpace(b) == "" {
			return errors.New("an empty entry; give HOST:PORT,HOST:PORT (or leave the flag out for the dev broker)")
		}
		if err := checkHostPort(strings.TrimSpace(b)); err != nil {
			return err
		}
	}
	return nil
}

// checkHostPort refuses an address to dial unless it is HOST:PORT with a port from 1 to 65535
// (an IPv6 host in brackets), so a missing or mistyped port is named with its flag before
// anything starts rather than in the dial's error.
func checkHostPort(s string) error { return checkAddr(s, 1) }

// checkListenAddr refuses an address to listen on unless it is [HOST]:PORT with a port from 0 to
// 65535 (0: any free port; no host: every interface), so that --http-addr 127.0.0.1:99999 is
// named with its flag when the flags are parsed, not after serve has migrated ClickHouse.
func checkListenAddr(s string) error { return checkAddr(s, 0) }

// checkAddr is checkHostPort and checkListenAddr: HOST:PORT with a port from minPort to 65535.
func checkAddr(s string, minPort int) error {
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%q has spaces around it", s)
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", s)
	}
	if n, err := strconv.Atoi(port); err != nil || strings.Trim(port, "0123456789") != "" || n < minPort || n > 65535 {
		return fmt.Errorf("port %q of %q is not a number from %d to 65535", port, s, minPort)
	}
	return nil
}

// brokerList returns the brokers to use: --kafka-brokers, or the dev broker's address.
func (k *kafkaFlags) brokerList() []string {
	if k.brokers == "" {
		return []string{k.devBrokerAddr}
	}
	var out []string
	for _, b := range strings.Split(k.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// addSessionizerFlags adds the sessionizer's flags (serve's and bench ingest's) to fs; call
// checkSessionizerFlags on the result once they are parsed. Each refuses what the sessionizer
// would read as its default (0), or what breaks it (a negative cap evicted more customers than it
// held).
func addSessionizerFlags(fs *flagSet) *sessionize.Config {
	var c sessionize.Config
	addSessionFlags(fs, &c)
	checkedVar(fs, &c.AllowedLateness, "allowed-lateness", 72*time.Hour, "how late an event may arrive and still be expected (older ones are stored and counted)", parseDuration, positive)
	checkedVar(fs, &c.DefaultCurrency, "default-currency", "USD", "currency of an order amount whose event names none (properties.currency), in the live revenue and refund metrics: an ISO 4217 code, as Segment's spec assumes USD, or none for a series of their own", sessionize.ParseDefaultCurrency, nil)
	checkedVar(fs, &c.MaxCustomers, "max-customers", 1_000_000, "customers (devices, and userIds without a device) the sessionizer holds in memory; above it the least recently active are evicted and restored from ClickHouse when they return", wholeNumber(1, math.MaxInt), nil)
	return &c
}

// addSessionFlags adds --session-gap, --session-max, --own-domains and --alias-joins-users, what
// makes a session, its entry channel and its person, into c: the sessionizer's flags that
// resessionize takes too (it holds no customers between runs, so the others change nothing
// there). Call checkSessionizerFlags once they are parsed.
func addSessionFlags(fs *flagSet, c *sessionize.Config) {
	checkedVar(fs, &c.Gap, "session-gap", 30*time.Minute, "inactivity that ends a session", parseDuration, positive)
	checkedVar(fs, &c.MaxDuration, "session-max", 24*time.Hour, "longest session; longer runs are cut", parseDuration, positive)
	checkedVar(fs, (*domainList)(&c.OwnDomains), "own-domains", nil, "comma-separated domains whose referrers are the shop's own navigation besides the page's own site (a checkout or payment domain: pay.example), each with its subdomains; such a touchpoint is no referral",
		func(s string) (domainList, error) { return sessionize.ParseOwnDomains(s) }, func(domainList) error { return nil })
	fs.BoolVar(&c.AliasJoinsUsers, "alias-joins-users", false, "an alias read while it is on whose previousId is another person's userId joins the two persons for good (a shop that re-keys its users with alias; PostHog's $merge_dangerously); off: such an alias is its userId signing in and joins no one. Either way it applies to aliases read from then on: turning it on joins none read before, turning it off splits none it joined")
}

// domainList is --own-domains' value, shown as it is written: comma-separated.
type domainList []string

func (d domainList) String() string { return strings.Join(d, ",") }

// checkSessionizerFlags reports what the sessionizer's flags cannot do together, naming the flag.
func checkSessionizerFlags(fs *flagSet, c *sessionize.Config) error {
	if c.MaxDuration < c.Gap {
		return fs.errorf("session-max", "must be at least %s %s, got %s", fs.ref("session-gap"), c.Gap, c.MaxDuration)
	}
	return nil
}

// addHTTPAddrFlag adds --http-addr (WAYMARK_HTTP_ADDR), the address serve listens on for HTTP,
// to serve and to healthcheck, which asks it.
func addHTTPAddrFlag(fs *flagSet) *string {
	var addr string
	checkedVar(fs, &addr, "http-addr", "127.0.0.1:8080", "HTTP address: tracking API (collector role), query API and page (query role), /healthz, /readyz, and /metrics unless --metrics-addr is set", text, checkListenAddr)
	return &addr
}

// addBatchFlags adds the consumer's --batch-size and --flush-interval (serve's, bench's and bench
// ingest's) into c; the consumer would read 0 as its default.
func addBatchFlags(fs *flagSet, c *ingest.ConsumerConfig) {
	checkedVar(fs, &c.BatchSize, "batch-size", 20000, "events written to ClickHouse at most in one insert", wholeNumber(1, math.MaxInt), nil)
	checkedVar(fs, &c.FlushInterval, "flush-interval", 500*time.Millisecond, "longest wait before a partial batch is written", parseDuration, atLeast(ingest.MinFlushInterval))
}

// clickhouseFlags are the flags of commands that talk to ClickHouse.
type clickhouseFlags struct {
	cfg store.Config
}

// addStoreFlags adds the flags of the connection to ClickHouse, which every command that talks
// to it takes. Each command adds the other parts of the store's configuration where they apply
// to it: addClusterFlag, addQueryLimitFlags, addFunnelMatchingFlag (a flag that changes nothing
// misleads in the help). Each flag refuses what store.Open would refuse, or take for its default
// (0), when it is parsed.
func addStoreFlags(fs *flagSet) *clickhouseFlags {
	c := &clickhouseFlags{}
	checkedVar(fs, &c.cfg.Addr, "clickhouse-addr", "127.0.0.1:9000", "ClickHouse native protocol address host:port", text, checkHostPort)
	checkedVar(fs, &c.cfg.Database, "clickhouse-database", "waymark", "ClickHouse database of Waymark's tables", text, store.CheckIdentifier)
	fs.StringVar(&c.cfg.User, "clickhouse-user", "default", "ClickHouse user")
	fs.StringVar(&c.cfg.Password, "clickhouse-password", "", "ClickHouse password")
	checkedVar(fs, &c.cfg.DialTimeout, "clickhouse-dial-timeout", 5*time.Second, "time allowed to connect to ClickHouse", parseDuration, positive)
	return c
}

// openStore connects to ClickHouse as cfg says (store.Open), cfg being the one addStoreFlags
// filled in fs or a copy of it. A server that does not answer is an error naming
// --clickhouse-addr (and --clickhouse-dial-timeout when it took a connection and did not answer
// within it), one that refuses the user names --clickhouse-user (its password is the other half),
// as every flag's bad value is named.
//
// Whether the address is ClickHouse's HTTP port is asked only when the connection takes long
// (probeAfter), beside it, so that a ClickHouse that hangs fails in about the dial timeout, not
// the probe's time more (tester 28's F2).
func openStore(ctx context.Context, fs *flagSet, cfg store.Config, log *slog.Logger, reg prometheus.Registerer) (*store.Store, error) {
	probed := make(chan bool, 1)
	probe := time.AfterFunc(probeAfter, func() { probed <- clickhouseHTTP(ctx, cfg.Addr) })
	st, err := store.Open(ctx, cfg, log, reg)
	isHTTP := func() bool {
		if probe.Stop() { // not asked yet
			return clickhouseHTTP(ctx, cfg.Addr)
		}
		return <-probed
	}
	var ce *store.ConnectError
	switch {
	case !errors.As(err, &ce) || ctx.Err() != nil:
		probe.Stop()
		return st, err
	case ce.Auth:
		probe.Stop()
		return nil, fs.errorf("clickhouse-user", "ClickHouse at %s refused user %q with the password given (%s): %w", cfg.Addr, cfg.User, fs.ref("clickhouse-password"), err)
	case isHTTP():
		return nil, fs.errorf("clickhouse-addr", "%s answers HTTP: that is ClickHouse's HTTP port (8123 by default), and Waymark speaks ClickHouse's native protocol, on its TCP port (<tcp_port>, 9000 by default): %w", cfg.Addr, err)
	default:
		at := cfg.Addr
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() { // connected, and no hello came back in time
			at += fmt.Sprintf(" within %s (%s)", fs.ref("clickhouse-dial-timeout"), cfg.DialTimeout)
		}
		return nil, noAnswer(fs, "clickhouse-addr", "ClickHouse", at, err)
	}
}

// probeAfter is how long openStore waits on a connection before it asks, beside it, whether the
// address is ClickHouse's HTTP port (clickhouseHTTP): a native port says hello in milliseconds.
const probeAfter = 500 * time.Millisecond

// clickhouseHTTP reports whether ClickHouse's HTTP interface answers at addr (host:port) within
// a few seconds: GET /ping answered 200 "Ok.". There, ClickHouse's native handshake gets no answer
// it can read, only a timeout. A native port answers HTTP too, with a 400 saying it is for
// clickhouse-client, so any other answer is not this slip (tester 27's F1).
func clickhouseHTTP(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/ping", nil)
	if err != nil {
		return false
	}
	// No proxy (http.DefaultClient takes HTTP_PROXY's): the question is what answers at addr.
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16))
	return err == nil && resp.StatusCode == http.StatusOK && string(body) == "Ok.\n"
}

// dialFailed reports whether err is a dial that nothing answered (refused, timed out, a host
// name that does not resolve), so that a command can name the flag holding the address.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// dialAny opens and closes a TCP connection to the first of addrs that takes one, each given up
// to brokerDialTimeout (and ctx); it returns the last dial's error when none does.
func dialAny(ctx context.Context, addrs []string) error {
	var err error
	for _, addr := range addrs {
		var conn net.Conn
		if conn, err = (&net.Dialer{Timeout: brokerDialTimeout}).DialContext(ctx, "tcp", addr); err == nil {
			return conn.Close()
		}
	}
	return err
}

// brokerDialTimeout bounds dialAny's wait for each address.
const brokerDialTimeout = 10 * time.Second

// noAnswer is the error of a command whose peer, what, did not answer at addr, the value of
// the named flag: "--flag: no WHAT answers at ADDR: err", so the message names the flag to
// change, as a bad value's does (openStore's ClickHouse, replay's brokers and collector,
// healthcheck's server).
func noAnswer(fs *flagSet, flag, what, addr string, err error) error {
	return fs.errorf(flag, "no %s answers at %s: %w", what, addr, err)
}

// addClusterFlag adds --clickhouse-cluster, into c, for the commands that create (or drop)
// Waymark's schema: serve, migrate, bench and bench ingest.
func addClusterFlag(fs *flagSet, c *clickhouseFlags) {
	checkedVar(fs, &c.cfg.Cluster, "clickhouse-cluster", "", "ClickHouse cluster name: the schema is created ON CLUSTER, with Replicated tables under Distributed ones; empty: a single node", text, func(s string) error {
		if s == "" {
			return nil
		}
		return store.CheckIdentifier(s)
	})
}

// minQueryMemory is the least --query-max-memory: no journey query runs in less, and the store
// reports the limit in MiB (--query-max-memory 1 was "memory 0 MiB").
const minQueryMemory = 1 << 20

// minPassEvents is the least --query-pass-events: a pass is a ClickHouse query, and smaller ones
// cost more than the grouping they save.
const minPassEvents = 10_000

// addQueryLimitFlags adds --query-timeout, --query-max-memory and --query-pass-events, into c,
// for the commands that answer journey queries: serve, the query commands, bench and bench
// ingest. over says what happens to a query over the first two.
func addQueryLimitFlags(fs *flagSet, c *clickhouseFlags, over string) {
	checkedVar(fs, &c.cfg.QueryTimeout, "query-timeout", time.Minute, "time limit of each journey query, its ClickHouse queries (max_execution_time) and the matching in Waymark; "+over, parseDuration, positive)
	checkedVar(fs, &c.cfg.QueryMaxMemory, "query-max-memory", 4<<30, "memory limit of each journey query in ClickHouse, in bytes (max_memory_usage), at least 1 MiB; "+over, wholeNumber[uint64](minQueryMemory, math.MaxUint64), nil)
	checkedVar(fs, &c.cfg.QueryPassEvents, "query-pass-events", 0, "most stored events a journey query groups by person in one ClickHouse query, 0 or at least 10000; more are read in passes over ranges of persons (docs/query-scale.md); 0: --query-max-memory / 400", wholeNumber[uint64](0, math.MaxUint64), func(n uint64) error {
		if n != 0 && n < minPassEvents {
			return fmt.Errorf("want 0 or at least %d", minPassEvents)
		}
		return nil
	})
}

// addFunnelMatchingFlag adds --funnel-matching, into c, for the commands that answer funnels
// (serve, bench, and every journey query): where their per-person work runs.
func addFunnelMatchingFlag(fs *flagSet, c *clickhouseFlags) {
	checkedVar(fs, &c.cfg.FunnelMatching, "funnel-matching", store.MatchAuto, "where the per-person work of the journey queries runs: auto (in ClickHouse when it has the waymark_funnel UDF, see docs/udf.md), engine or process", text, store.CheckFunnelMatching)
}

// checked is a flag.Value that reads its text with parse and refuses what check refuses, when
// the flags are parsed: the error then names the flag (or its environment variable) before the
// command starts anything, and a value a Config would refuse later, without the flag's name, or
// silently take for its default (0), never reaches it.
type checked[T any] struct {
	v     *T
	parse func(string) (T, error)
	check func(T) error
}

// checkedVar defines a checked flag of fs that stores its value in p, def until it is set; check
// may be nil when parse refuses everything the flag does not take (wholeNumber, number).
func checkedVar[T any](fs *flagSet, p *T, name string, def T, usage string, parse func(string) (T, error), check func(T) error) {
	*p = def
	fs.Var(checked[T]{p, parse, check}, name, usage)
}

func (c checked[T]) String() string {
	if c.v == nil {
		return ""
	}
	return fmt.Sprint(*c.v)
}

func (c checked[T]) Set(s string) error {
	v, err := c.parse(s)
	if err == nil && c.check != nil {
		err = c.check(v)
	}
	if err != nil {
		return err
	}
	*c.v = v
	return nil
}

// positive refuses zero and negative values.
func positive[T cmp.Ordered](v T) error {
	var zero T
	if v <= zero {
		return errors.New("must be positive")
	}
	return nil
}

// atLeast refuses values below lo.
func atLeast[T cmp.Ordered](lo T) func(T) error {
	return func(v T) error {
		if v < lo {
			return fmt.Errorf("must be at least %v", lo)
		}
		return nil
	}
}

// wholeNumber returns the parser of an integer flag that takes lo to hi. Text that is no whole
// number ("x", "1.5", "1e3") and a number out of range are refused alike, saying what the flag
// takes: "want a whole number from 1 to 1024", or "want a whole number, at least 1" when hi is
// the type's largest (strconv's own words, "invalid syntax", said neither). A number written
// with a + sign is refused blaming the sign, in the query parameters' words
// (store.PlusSignError: "+5" is at least 1, and "want a whole number, at least 1" contradicted
// itself: tester 53's F7).
func wholeNumber[T int | uint64](lo, hi T) func(string) (T, error) {
	want := fmt.Errorf("want a whole number from %d to %d", lo, hi)
	give := fmt.Sprintf("one from %d to %d", lo, hi)
	if u := uint64(hi); u == math.MaxInt || u == math.MaxUint64 { // no upper bound
		want = fmt.Errorf("want a whole number, at least %d", lo)
		give = fmt.Sprintf("one, at least %d", lo)
	}
	return func(s string) (T, error) {
		if rest, signed := strings.CutPrefix(s, "+"); signed && isDigits(rest) {
			return 0, store.PlusSignError(s, "a whole number", give)
		}
		var v T
		var err error
		switch p := any(&v).(type) {
		case *int:
			*p, err = strconv.Atoi(s)
		case *uint64:
			*p, err = strconv.ParseUint(s, 10, 64)
		}
		// digits only, as the query API takes a whole number: strconv takes a sign too (tester 49's F6)
		if err != nil || !isDigits(s) || v < lo || v > hi {
			return v, want
		}
		return v, nil
	}
}

// number returns the parser of a float flag that takes the finite numbers from lo, and below
// below when it is finite, saying so when refusing one ("x", NaN, Inf, or out of range). It
// takes plain decimals only, digits with a point or not (1000, 2.5, -1 to be refused as out of
// range): strconv also takes Go's 1_000, hex floats (0x1p4) and exponents, which no one means
// for a rate; a + sign is refused blaming the sign, as wholeNumber does (tester 53's F7).
func number(lo, below float64) func(string) (float64, error) {
	want := fmt.Errorf("want a number, at least %v", lo)
	give := fmt.Sprintf("one, at least %v", lo)
	if !math.IsInf(below, 1) {
		want = fmt.Errorf("want a number from %v to below %v", lo, below)
		give = fmt.Sprintf("one from %v to below %v", lo, below)
	}
	return func(s string) (float64, error) {
		if rest, signed := strings.CutPrefix(s, "+"); signed && isDecimal(rest) {
			return 0, store.PlusSignError(s, "a number", give)
		}
		if !isDecimal(strings.TrimPrefix(s, "-")) {
			return 0, fmt.Errorf("%w, in decimal digits (1000, 2.5)", want)
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(v, 0) || !(v >= lo && v < below) {
			return v, want
		}
		return v, nil
	}
}

// isDigits reports whether s is decimal digits only, a whole number as the flags take one.
func isDigits(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }

// isDecimal reports whether s is a plain decimal number without a sign: digits, with one point
// among or after them (1000, 2.5, .5, 5.).
func isDecimal(s string) bool {
	whole, frac, _ := strings.Cut(s, ".")
	return isDigits(whole+frac) && (whole == "" || isDigits(whole)) && (frac == "" || isDigits(frac))
}

// parseDuration reads a duration in Go syntax; its error does not repeat the value (the setter
// shows it), unlike time.ParseDuration's.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration like 500ms, 90s, 5m or 2h")
	}
	return d, nil
}

// text reads a text flag as it is.
func text(s string) (string, error) { return s, nil }

// rangeFlags are --from and --to, bounding a time range.
type rangeFlags struct {
	fs       *flagSet
	from, to *string
}

func addRangeFlags(fs *flagSet, what string) rangeFlags {
	return rangeFlags{
		fs:   fs,
		from: fs.String("from", "", what+" at or after this time: RFC 3339 or YYYY-MM-DD (UTC); empty: all time"),
		to:   fs.String("to", "", what+" before this time: RFC 3339 or YYYY-MM-DD (UTC); empty: all time"),
	}
}

// parse returns the range; zero times are unbounded. Errors name the flag.
func (r rangeFlags) parse() (from, to time.Time, err error) {
	return parseRange(r.fs, *r.from, *r.to)
}

// parseRange reads --from and --to, flags of fs, as the store reads and checks a query's from
// and to (store.ParseTime, store.CheckRange), errors naming the flag of the parameter the store
// names (paramFlagError): a --to not after --from names --to, as the API names to. Zero times are
// unbounded.
func parseRange(fs *flagSet, fromText, toText string) (from, to time.Time, err error) {
	if from, err = store.ParseTime(fromText); err != nil {
		return from, to, paramFlagError(fs, &store.ParamError{Param: "from", Err: err})
	}
	if to, err = store.ParseTime(toText); err != nil {
		return from, to, paramFlagError(fs, &store.ParamError{Param: "to", Err: err})
	}
	return from, to, paramFlagError(fs, store.CheckRange(from, to))
}

// paramFlagError is err, the store's, as the CLI says it: a *store.ParamError names the
// parameter's flag (flagName, as fs.ref gives it); its problem is the store's, but for what the
// store leaves to the caller to phrase: a range whose --to is not after --from names --from as
// it was given, and a time whose + was read as a space (store.TimeError.Plus) is given the time
// with its +, which on the command line needs no escaping (the API's hint, %2B, is a URL's).
// Other errors are err.
func paramFlagError(fs *flagSet, err error) error {
	var pe *store.ParamError
	if !errors.As(err, &pe) {
		return err
	}
	name := flagName(pe.Param)
	var re *store.RangeError
	var te *store.TimeError
	switch {
	case errors.As(pe.Err, &re):
		return fs.errorf(name, "%s is not after %s %s", store.FormatTime(re.To), fs.ref("from"), store.FormatTime(re.From))
	case errors.As(pe.Err, &te) && te.Plus != "":
		return fs.errorf(name, "%w Give it with its +, which the command line takes as it is: %s", pe.Err, quoteValue(te.Plus))
	}
	return fs.errorf(name, "%w", pe.Err)
}

// openWithMap loads the journey map (errors name --journey-map, a flag of fs) and connects to
// ClickHouse, for the commands that query stored events. A database that does not exist is
// refused here, naming --clickhouse-database (or its variable), once for every such command:
// each of their first queries would otherwise report ClickHouse's error in its own words.
func openWithMap(ctx context.Context, fs *flagSet, cf *clickhouseFlags, mapPath string, log *slog.Logger) (*store.Store, *sessionize.Map, error) {
	jm, err := sessionize.LoadMap(mapPath)
	if err != nil {
		return nil, nil, fs.errorf("journey-map", "%w", err)
	}
	st, err := openStore(ctx, fs, cf.cfg, log, nil)
	if err != nil {
		return nil, nil, err
	}
	exists, err := st.DatabaseExists(ctx)
	if err == nil && !exists {
		err = fs.errorf("clickhouse-database", "database %q does not exist on %s (run waymark serve or waymark migrate first)", cf.cfg.Database, cf.cfg.Addr)
	}
	if err == nil {
		// As serve does before it serves: a regexp ClickHouse cannot use failed the query with
		// ClickHouse's own error, naming neither the stage nor the flag (tester 29's N4).
		if err = st.CheckJourneyMap(ctx, jm); err != nil && !errors.Is(err, ctx.Err()) {
			err = fs.errorf("journey-map", "%w", err)
		}
	}
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, jm, nil
}
