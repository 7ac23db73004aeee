package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/postgres"
	"github.com/seqrelay/seqrelay/eventlog/sqlite"
	"github.com/seqrelay/seqrelay/internal/natsrv"
	"github.com/seqrelay/seqrelay/publish"
)

// DefaultEmbeddedNATSPort is where `seqrelay run` serves its embedded NATS.
const DefaultEmbeddedNATSPort = 4223

// defaultDataDir is $SEQRELAY_DATA, else $XDG_DATA_HOME/seqrelay, else
// ~/.local/share/seqrelay.
func defaultDataDir() string {
	if d := os.Getenv("SEQRELAY_DATA"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "seqrelay")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "seqrelay")
	}
	return ".seqrelay"
}

// storeFlags select the event log.
type storeFlags struct {
	store   string
	data    string
	migrate bool
}

func addStoreFlags(fs *flag.FlagSet) *storeFlags {
	s := &storeFlags{}
	fs.StringVar(&s.store, "store", "", "event log: an SQLite file path (default <data>/events.db), or a PostgreSQL URL postgres://user:password@host:5432/db (schema: its search_path parameter, default public) (env SEQRELAY_STORE)")
	fs.StringVar(&s.data, "data", defaultDataDir(), "data directory for the default store and the embedded NATS (env SEQRELAY_DATA)")
	fs.BoolVar(&s.migrate, "migrate", false, "create or upgrade the tables of a PostgreSQL store (an SQLite file: create it when missing)")
	return s
}

// open opens the event log. The default store, and any store when create
// is true, is created when missing; a named store must exist otherwise. A
// postgres:// URL opens PostgreSQL, whose tables only --migrate creates. The
// string returned names the store, without a password.
func (s *storeFlags) open(ctx context.Context, create bool) (eventlog.Log, string, error) {
	path := s.store
	if path == "" {
		path = os.Getenv("SEQRELAY_STORE")
	}
	if path == "" {
		path, create = filepath.Join(s.data, "events.db"), true
	}
	if strings.HasPrefix(path, "postgres://") || strings.HasPrefix(path, "postgresql://") {
		var opts []postgres.Option
		if s.migrate {
			opts = append(opts, postgres.WithMigrate())
		}
		l, err := postgres.Open(ctx, path, opts...)
		if err != nil {
			return nil, postgres.Redact(path), err
		}
		return l, l.String(), nil
	}
	if strings.Contains(path, "://") {
		return nil, redactURL(path), usagef("--store %q: only SQLite file paths and postgres:// URLs are supported", redactURL(path))
	}
	var opts []sqlite.Option
	if create || s.migrate {
		opts = append(opts, sqlite.WithCreate())
	}
	l, err := sqlite.Open(ctx, path, opts...)
	if err != nil {
		return nil, path, err
	}
	return l, path, nil
}

// natsFlags select the NATS server: a URL, or an embedded one.
type natsFlags struct {
	url   string
	creds string
	port  int
}

func addNATSFlags(fs *flag.FlagSet, embeddedPort int) *natsFlags {
	n := &natsFlags{}
	fs.StringVar(&n.url, "nats", "", "NATS server URL, such as nats://127.0.0.1:4222 (default: run an embedded NATS with JetStream)")
	n.addCommon(fs)
	fs.IntVar(&n.port, "nats-port", embeddedPort, "port of the embedded NATS when --nats is not given (0: any free port)")
	return n
}

// addRemoteNATSFlags selects a running NATS server (no embedded one).
func addRemoteNATSFlags(fs *flag.FlagSet) *natsFlags {
	n := &natsFlags{port: -1}
	fs.StringVar(&n.url, "nats", nats.DefaultURL, "NATS server URL (with JetStream)")
	n.addCommon(fs)
	return n
}

func (n *natsFlags) addCommon(fs *flag.FlagSet) {
	fs.StringVar(&n.creds, "nats-creds", "", "NATS credentials file (user/password or token go in the URL: nats://user:pass@host:4222)")
}

// connection is a NATS connection and, when embedded, its server.
type connection struct {
	nc       *nats.Conn
	url      string
	embedded *natsrv.Server
}

func (c *connection) Close() {
	c.nc.Close()
	if c.embedded != nil {
		c.embedded.Shutdown()
	}
}

// connect connects to --nats, or starts an embedded server that keeps its
// JetStream data in dataDir/nats.
func (n *natsFlags) connect(dataDir string) (*connection, error) {
	c := &connection{url: n.url}
	if n.url == "" && n.port < 0 {
		return nil, usagef("--nats is empty: give the URL of a NATS server with JetStream")
	}
	if n.url == "" {
		if n.port < 0 || n.port > 65535 {
			return nil, usagef("--nats-port %d: use a port from 1 to 65535, or 0 for any free port", n.port)
		}
		srv, err := natsrv.Start(natsrv.Options{Port: n.port, StoreDir: filepath.Join(dataDir, "nats")})
		if err != nil {
			return nil, fmt.Errorf("%w; pass --nats-port 0 for any free port, or --nats URL to use a running server", err)
		}
		c.embedded, c.url = srv, srv.URL()
	}
	opts := []nats.Option{
		nats.Name("seqrelay"),
		nats.Timeout(5 * time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	if n.creds != "" {
		if _, err := os.Stat(n.creds); err != nil {
			return nil, fmt.Errorf("--nats-creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(n.creds))
	}
	nc, err := nats.Connect(c.url, opts...)
	if err != nil {
		if c.embedded != nil {
			c.embedded.Shutdown()
		}
		return nil, natsConnectError(c.url, err)
	}
	c.nc = nc
	return c, nil
}

func natsConnectError(url string, err error) error {
	redacted := redactURL(url)
	switch {
	case errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization"):
		return fmt.Errorf("NATS at %s refused the credentials (%v): check the user, password, token or --nats-creds", redacted, err)
	case errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("cannot reach NATS at %s (%v): start it, check the URL, or leave out --nats to run an embedded server", redacted, err)
	}
	return fmt.Errorf("connect to NATS at %s: %w", redacted, err)
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "***" + u[i:]
		}
	}
	return u
}

// streamFlags describe the target stream.
type streamFlags struct {
	name     string
	subjects string
	prefix   string
	create   bool
	window   time.Duration
	memory   bool
}

func addStreamFlags(fs *flag.FlagSet) *streamFlags {
	s := &streamFlags{}
	fs.StringVar(&s.name, "stream", publish.DefaultStream, "JetStream stream to deliver to")
	fs.StringVar(&s.subjects, "subjects", strings.Join(publish.DefaultSubjects, ","), "subjects of the stream when it is created (comma-separated)")
	fs.StringVar(&s.prefix, "subject-prefix", publish.DefaultSubjectPrefix, "an event of type T is published on <prefix>.T")
	fs.BoolVar(&s.create, "create-stream", true, "create the stream when it does not exist")
	fs.DurationVar(&s.window, "dedupe-window", publish.DefaultDuplicateWindow, "duplicate window of the stream when it is created")
	fs.BoolVar(&s.memory, "memory-stream", false, "create the stream with memory storage instead of file storage")
	return s
}

func (s *streamFlags) subjectList() []string {
	var out []string
	for sub := range strings.SplitSeq(s.subjects, ",") {
		if sub = strings.TrimSpace(sub); sub != "" {
			out = append(out, sub)
		}
	}
	return out
}

func (s *streamFlags) validate() error {
	if err := publish.ValidateStreamName(s.name); err != nil {
		return usagef("--stream: %v", err)
	}
	if err := dispatcher.ValidateSubject(s.prefix); err != nil {
		return usagef("--subject-prefix: %v", err)
	}
	if len(s.subjectList()) == 0 {
		return usagef("--subjects: give at least one subject")
	}
	if s.window <= 0 {
		return usagef("--dedupe-window %s: must be positive", s.window)
	}
	return nil
}

// ensure creates the stream if asked, or checks that it exists. It
// returns a line describing the stream.
func (s *streamFlags) ensure(ctx context.Context, nc *nats.Conn) (string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !s.create {
		str, err := js.Stream(ctx, s.name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return "", fmt.Errorf("stream %q does not exist and --create-stream=false: create it, or drop that flag", s.name)
		}
		if err != nil {
			return "", streamError(s.name, err)
		}
		return describe(str.CachedInfo(), false), nil
	}
	storage := jetstream.FileStorage
	if s.memory {
		storage = jetstream.MemoryStorage
	}
	str, created, err := publish.EnsureStream(ctx, js, publish.StreamConfig{
		Name: s.name, Subjects: s.subjectList(), Storage: storage, DuplicateWindow: s.window,
	})
	if err != nil {
		return "", streamError(s.name, err)
	}
	return describe(str.CachedInfo(), created), nil
}

func streamError(name string, err error) error {
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stream %q: %w (is JetStream enabled on the server? start nats-server with -js)", name, err)
	}
	return fmt.Errorf("stream %q: %w", name, err)
}

func describe(info *jetstream.StreamInfo, created bool) string {
	verb := "existing"
	if created {
		verb = "created"
	}
	return fmt.Sprintf("%s (%s, subjects %s, %d messages)", info.Config.Name, verb, strings.Join(info.Config.Subjects, ","), info.State.Msgs)
}

// deliveryFlags configure delivery in both runtimes: the dispatcher ID,
// the eight Config durations, the poison policy and the in-flight window.
type deliveryFlags struct {
	id          string
	cfg         dispatcher.Config
	poison      string
	deadLetter  string
	maxInFlight int
}

func addDeliveryFlags(fs *flag.FlagSet) *deliveryFlags {
	d := &deliveryFlags{}
	def := dispatcher.DefaultConfig()
	fs.StringVar(&d.id, "id", "seqrelay", "dispatcher ID: names its checkpoint and prefixes its message IDs")
	fs.DurationVar(&d.cfg.CheckpointInterval, "checkpoint-interval", def.CheckpointInterval, "how often progress is saved (negative: never)")
	fs.DurationVar(&d.cfg.CheckpointTimeout, "checkpoint-timeout", def.CheckpointTimeout, "time allowed for one checkpoint")
	fs.DurationVar(&d.cfg.StallTimeout, "stall-timeout", def.StallTimeout, "an unacknowledged publish older than this is a failure")
	fs.DurationVar(&d.cfg.StallCheckInterval, "stall-check-interval", def.StallCheckInterval, "how often to look for stalled publishes")
	fs.DurationVar(&d.cfg.ProcessInterval, "process-interval", def.ProcessInterval, "how often to look for new events when idle")
	fs.DurationVar(&d.cfg.SeekTimeout, "seek-timeout", def.SeekTimeout, "time allowed for one read of the event log")
	fs.DurationVar(&d.cfg.BaseRetryInterval, "base-retry-interval", def.BaseRetryInterval, "first delay after a failure")
	fs.DurationVar(&d.cfg.MaxRetryInterval, "max-retry-interval", def.MaxRetryInterval, "longest delay between retries")
	fs.StringVar(&d.poison, "poison", string(dispatcher.PoisonStop), "what to do with an event that cannot be delivered: stop or dead-letter")
	fs.StringVar(&d.deadLetter, "dead-letter-subject", dispatcher.DefaultDeadLetterSubject, "subject prefix of dead letters (must be in the stream)")
	fs.IntVar(&d.maxInFlight, "max-in-flight", dispatcher.DefaultMaxInFlight, "most messages awaiting acknowledgement")
	return d
}

// validate checks the flags and returns the poison policy.
func (d *deliveryFlags) validate() (dispatcher.PoisonPolicy, error) {
	if err := eventlog.ValidateReaderID(d.id); err != nil {
		return "", usagef("--id: %v", err)
	}
	if err := d.cfg.Validate(); err != nil {
		return "", &usageError{flagNames(err)}
	}
	policy, err := dispatcher.ParsePoisonPolicy(d.poison)
	if err != nil {
		return "", usagef("--poison: %v", err)
	}
	if d.maxInFlight < 1 {
		return "", usagef("--max-in-flight %d: must be at least 1", d.maxInFlight)
	}
	if err := dispatcher.ValidateSubject(d.deadLetter); err != nil {
		return "", usagef("--dead-letter-subject: %v", err)
	}
	return policy, nil
}

// dispatcherFlags configure the in-process dispatcher.
type dispatcherFlags struct {
	*deliveryFlags
	batch int
}

func addDispatcherFlags(fs *flag.FlagSet) *dispatcherFlags {
	d := &dispatcherFlags{deliveryFlags: addDeliveryFlags(fs)}
	fs.IntVar(&d.batch, "batch-size", dispatcher.DefaultBatchSize, "events per read of the log")
	return d
}

// options validates the flags and returns the dispatcher options.
func (d *dispatcherFlags) options() ([]dispatcher.Option, error) {
	policy, err := d.validate()
	if err != nil {
		return nil, err
	}
	if d.batch < 1 {
		return nil, usagef("--batch-size %d: must be at least 1", d.batch)
	}
	return []dispatcher.Option{
		dispatcher.WithPoisonPolicy(policy),
		dispatcher.WithDeadLetterSubject(d.deadLetter),
		dispatcher.WithBatchSize(d.batch),
		dispatcher.WithMaxInFlight(d.maxInFlight),
	}, nil
}

// flagNames rewrites Config field names in a validation error as the flags
// that set them.
func flagNames(err error) error {
	msg := err.Error()
	for field, flagName := range map[string]string{
		"CheckpointInterval": "--checkpoint-interval", "CheckpointTimeout": "--checkpoint-timeout",
		"StallTimeout": "--stall-timeout", "StallCheckInterval": "--stall-check-interval",
		"ProcessInterval": "--process-interval", "SeekTimeout": "--seek-timeout",
		"BaseRetryInterval": "--base-retry-interval", "MaxRetryInterval": "--max-retry-interval",
	} {
		msg = strings.ReplaceAll(msg, field, flagName)
	}
	return errors.New(strings.ReplaceAll(msg, "\n", "; "))
}
