package dispatcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Config defines the configuration settings for the dispatcher. It controls
// timeouts, intervals and retry behaviour. Zero-valued fields take the
// defaults of DefaultConfig.
//
// In the Temporal runtime the same fields map onto Temporal: the retry
// intervals become the activity retry policy, the stall fields a workflow
// timer and the activity heartbeat timeout, the checkpoint fields a timer
// and its activity's timeout.
type Config struct {
	// CheckpointInterval determines how often the dispatcher saves its progress.
	// Lower values provide better durability at the cost of more IO operations.
	// Negative values disable checkpointing.
	// Default: 5 seconds
	CheckpointInterval time.Duration

	// CheckpointTimeout is the maximum time allowed for a checkpoint operation.
	// If exceeded, the checkpoint is abandoned and will be retried next interval.
	// Default: 5 seconds
	CheckpointTimeout time.Duration

	// StallTimeout is the duration after which a pending message is considered stalled.
	// A stalled publish is treated as a failure: delivery rewinds to the last
	// acknowledged event and retries with backoff.
	// Should be significantly longer than expected network latency and processing time.
	// Default: 5 minutes
	StallTimeout time.Duration

	// StallCheckInterval defines how often to check for stalled messages.
	// More frequent checks provide quicker detection but increase CPU usage.
	// Must be shorter than StallTimeout.
	// Default: 30 seconds
	StallCheckInterval time.Duration

	// ProcessInterval controls how often the dispatcher looks for work when
	// it has none: new events appended by other processes (appends through
	// the same log value wake it at once) and publish results.
	// Lower values reduce latency but increase CPU usage and reads of the log.
	// Default: 10 milliseconds
	ProcessInterval time.Duration

	// SeekTimeout is the maximum time allowed for seeking to a position in
	// the event stream: one read of the event log, or loading the checkpoint.
	// Exceeding this timeout indicates potential issues with the event source.
	// Default: 30 seconds
	SeekTimeout time.Duration

	// BaseRetryInterval is the initial delay between retry attempts after a failure.
	// This interval doubles on each further failure, up to MaxRetryInterval.
	// Default: 5 seconds
	BaseRetryInterval time.Duration

	// MaxRetryInterval caps the maximum delay between retry attempts.
	// Prevents exponential backoff from growing too large.
	// Default: 5 minutes
	MaxRetryInterval time.Duration
}

// DefaultConfig returns a Config initialized with reasonable default values.
// These defaults are designed to work well for most use cases but can be
// overridden based on specific requirements.
func DefaultConfig() Config {
	return Config{
		CheckpointInterval: 5 * time.Second,
		CheckpointTimeout:  5 * time.Second,
		StallTimeout:       5 * time.Minute,
		StallCheckInterval: 30 * time.Second,
		ProcessInterval:    10 * time.Millisecond,
		SeekTimeout:        30 * time.Second,
		BaseRetryInterval:  5 * time.Second,
		MaxRetryInterval:   5 * time.Minute,
	}
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	for _, f := range c.fields() {
		if *f.v == 0 {
			*f.v = *d.field(f.name)
		}
	}
	return c
}

// CheckpointEnabled reports whether progress is persisted (CheckpointInterval
// is not negative).
func (c Config) CheckpointEnabled() bool { return c.CheckpointInterval >= 0 }

// Validate reports every invalid field of c, after zero fields take their
// defaults. Each problem is a *ConfigError; all match ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(field string, v time.Duration, problem string) {
		errs = append(errs, &ConfigError{Field: field, Value: v, Problem: problem})
	}
	for _, f := range c.fields() {
		if f.name == "CheckpointInterval" {
			continue // negative disables checkpointing
		}
		if *f.v < 0 {
			bad(f.name, *f.v, "must be positive (or zero for the default)")
		}
	}
	if c.MaxRetryInterval > 0 && c.BaseRetryInterval > 0 && c.MaxRetryInterval < c.BaseRetryInterval {
		bad("MaxRetryInterval", c.MaxRetryInterval,
			fmt.Sprintf("must not be less than BaseRetryInterval (%s)", c.BaseRetryInterval))
	}
	if c.StallTimeout > 0 && c.StallCheckInterval > 0 && c.StallCheckInterval >= c.StallTimeout {
		bad("StallCheckInterval", c.StallCheckInterval,
			fmt.Sprintf("must be less than StallTimeout (%s), or stalls are found late", c.StallTimeout))
	}
	return errors.Join(errs...)
}

// ConfigError names one invalid Config field.
type ConfigError struct {
	Field   string
	Value   time.Duration
	Problem string
}

// Error implements error.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid config: %s is %s: %s", e.Field, e.Value, e.Problem)
}

// Is makes every ConfigError match ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

type field struct {
	name string
	v    *time.Duration
}

func (c *Config) fields() []field {
	return []field{
		{"CheckpointInterval", &c.CheckpointInterval},
		{"CheckpointTimeout", &c.CheckpointTimeout},
		{"StallTimeout", &c.StallTimeout},
		{"StallCheckInterval", &c.StallCheckInterval},
		{"ProcessInterval", &c.ProcessInterval},
		{"SeekTimeout", &c.SeekTimeout},
		{"BaseRetryInterval", &c.BaseRetryInterval},
		{"MaxRetryInterval", &c.MaxRetryInterval},
	}
}

// field returns the field called name, or nil.
func (c *Config) field(name string) *time.Duration {
	for _, f := range c.fields() {
		if f.name == name {
			return f.v
		}
	}
	return nil
}

// MarshalJSON writes durations in human form ("5s", "5m0s").
func (c Config) MarshalJSON() ([]byte, error) {
	m := make(map[string]string, 8)
	for _, f := range c.fields() {
		if *f.v != 0 {
			m[f.name] = f.v.String()
		}
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads durations written as strings ("5s", "1m30s") or as
// integer nanoseconds. Unknown fields are an error, so that a typo does not
// silently leave a default in place.
func (c *Config) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var out Config
	for name, v := range raw {
		f := out.field(name)
		if f == nil {
			return fmt.Errorf("config: unknown field %q (known: CheckpointInterval, CheckpointTimeout, StallTimeout, StallCheckInterval, ProcessInterval, SeekTimeout, BaseRetryInterval, MaxRetryInterval)", name)
		}
		var d Duration
		if err := d.UnmarshalJSON(v); err != nil {
			return fmt.Errorf("config: %s: %w", name, err)
		}
		*f = time.Duration(d)
	}
	*c = out
	return nil
}

// Duration is a time.Duration written in JSON in human form ("5s",
// "250ms", "5m"); integer nanoseconds are read too.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a string such as "5s", or integer nanoseconds.
func (d *Duration) UnmarshalJSON(v []byte) error {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		p, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration: write it like \"5s\", \"250ms\" or \"5m\"", s)
		}
		*d = Duration(p)
		return nil
	}
	var n int64
	if err := json.Unmarshal(v, &n); err != nil {
		return fmt.Errorf("%s is not a duration: write it like \"5s\", \"250ms\" or \"5m\"", v)
	}
	*d = Duration(n)
	return nil
}
