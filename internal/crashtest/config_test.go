package crashtest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// config is the size and seed of one crash test, from the environment.
type config struct {
	events       uint64        // N: events appended and delivered
	kills        int           // SIGKILLs of the dispatcher
	natsRestarts int           // NATS outages; one outlasts the de-duplication window
	seed         uint64        // seeds the schedule and the appends
	duration     time.Duration // how long the appends are spread over
	timeout      time.Duration // how long delivery may take once the appends are done
	buildFlags   []string      // extra `go build` flags for the binary
	keep         bool          // keep the work directory even when the test passes
}

// Environment variables that tune the test (see the package documentation).
const (
	envEvents       = "SEQRELAY_CRASH_EVENTS"
	envKills        = "SEQRELAY_CRASH_KILLS"
	envNATSRestarts = "SEQRELAY_CRASH_NATS_RESTARTS"
	envSeed         = "SEQRELAY_CRASH_SEED"
	envDuration     = "SEQRELAY_CRASH_DURATION"
	envTimeout      = "SEQRELAY_CRASH_TIMEOUT"
	envBuildFlags   = "SEQRELAY_CRASH_BUILD_FLAGS"
	envKeep         = "SEQRELAY_CRASH_KEEP"
)

// loadConfig reads the environment; a malformed value fails the test,
// naming the variable.
func loadConfig(t *testing.T) config {
	t.Helper()
	cfg, err := parseConfig(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func parseConfig(getenv func(string) string) (config, error) {
	cfg := config{
		events:       20000,
		kills:        10,
		natsRestarts: 2,
		seed:         rand.Uint64() % 1_000_000_000, // short enough to type
		duration:     20 * time.Second,
		timeout:      90 * time.Second,
		buildFlags:   strings.Fields(getenv(envBuildFlags)),
	}
	switch v := getenv(envKeep); v {
	case "", "0", "false":
	case "1", "true":
		cfg.keep = true
	default:
		return config{}, fmt.Errorf("%s=%q: want 1 or 0", envKeep, v)
	}
	uintVar := func(name string, min uint64, dst *uint64) error {
		v := getenv(name)
		if v == "" {
			return nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n < min {
			return fmt.Errorf("%s=%q: want a whole number >= %d", name, v, min)
		}
		*dst = n
		return nil
	}
	intVar := func(name string, dst *int) error {
		n := uint64(*dst)
		if err := uintVar(name, 0, &n); err != nil {
			return err
		}
		if n > 1000 {
			return fmt.Errorf("%s=%d: at most 1000", name, n)
		}
		*dst = int(n)
		return nil
	}
	durVar := func(name string, dst *time.Duration) error {
		v := getenv(name)
		if v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s=%q: want a positive duration such as 20s", name, v)
		}
		*dst = d
		return nil
	}
	for _, err := range []error{
		uintVar(envEvents, 1, &cfg.events),
		intVar(envKills, &cfg.kills),
		intVar(envNATSRestarts, &cfg.natsRestarts),
		uintVar(envSeed, 0, &cfg.seed),
		durVar(envDuration, &cfg.duration),
		durVar(envTimeout, &cfg.timeout),
	} {
		if err != nil {
			return config{}, err
		}
	}
	return cfg, nil
}

// replay is the command line that runs the test again with cfg.
func (c config) replay() string {
	return fmt.Sprintf("%s=%d %s=%d %s=%d %s=%d %s=%s go test -count=1 -run Crash -v ./internal/crashtest",
		envSeed, c.seed, envEvents, c.events, envKills, c.kills, envNATSRestarts, c.natsRestarts, envDuration, c.duration)
}

// TestParseConfig checks the defaults, every variable, and that a bad value
// names its variable.
func TestParseConfig(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	cfg, err := parseConfig(get)
	require.NoError(t, err)
	assert.EqualValues(t, 20000, cfg.events)
	assert.Equal(t, 10, cfg.kills)
	assert.Equal(t, 2, cfg.natsRestarts)
	assert.Equal(t, 20*time.Second, cfg.duration)
	assert.Equal(t, 90*time.Second, cfg.timeout)
	assert.Empty(t, cfg.buildFlags)

	env = map[string]string{envEvents: "500", envKills: "3", envNATSRestarts: "0", envSeed: "42",
		envDuration: "2s", envTimeout: "10s", envBuildFlags: "-race -v", envKeep: "1"}
	cfg, err = parseConfig(get)
	require.NoError(t, err)
	assert.Equal(t, config{events: 500, kills: 3, natsRestarts: 0, seed: 42, duration: 2 * time.Second,
		timeout: 10 * time.Second, buildFlags: []string{"-race", "-v"}, keep: true}, cfg)
	assert.Contains(t, cfg.replay(), "SEQRELAY_CRASH_SEED=42 ")

	for k, v := range map[string]string{envEvents: "0", envKills: "-1", envSeed: "x", envDuration: "0s",
		envTimeout: "soon", envNATSRestarts: "5000", envKeep: "yes"} {
		env = map[string]string{k: v}
		_, err := parseConfig(get)
		if assert.Error(t, err, "%s=%s", k, v) {
			assert.Contains(t, err.Error(), k)
		}
	}
}
