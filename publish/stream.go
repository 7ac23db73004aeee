package publish

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of the target stream.
const (
	DefaultStream        = "SEQRELAY"
	DefaultSubjectPrefix = "seqrelay.events"
	// DefaultDuplicateWindow is JetStream's own default.
	DefaultDuplicateWindow = 2 * time.Minute
)

// DefaultSubjects are the subjects of the default stream: events and dead letters.
var DefaultSubjects = []string{"seqrelay.>"}

// StreamConfig is what EnsureStream creates.
type StreamConfig struct {
	Name     string
	Subjects []string
	// Storage is file (default) or memory.
	Storage jetstream.StorageType
	// DuplicateWindow is how long the server remembers message IDs
	// (default 2 minutes).
	DuplicateWindow time.Duration
	// Replicas is the number of replicas (default 1).
	Replicas int
}

// EnsureStream creates the stream unless it exists, and reports whether it
// created it. An existing stream is left as it is.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, bool, error) {
	if err := ValidateStreamName(cfg.Name); err != nil {
		return nil, false, err
	}
	if len(cfg.Subjects) == 0 {
		return nil, false, fmt.Errorf("stream %q: give it at least one subject", cfg.Name)
	}
	str, err := js.Stream(ctx, cfg.Name)
	if err == nil {
		return str, false, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, false, fmt.Errorf("look up stream %q: %w", cfg.Name, err)
	}
	str, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       cfg.Name,
		Subjects:   cfg.Subjects,
		Storage:    cfg.Storage,
		Duplicates: cmp.Or(cfg.DuplicateWindow, DefaultDuplicateWindow),
		Replicas:   max(cfg.Replicas, 1),
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created by someone else meanwhile
		str, err = js.Stream(ctx, cfg.Name)
		return str, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("create stream %q with subjects %v: %w", cfg.Name, cfg.Subjects, err)
	}
	return str, true, nil
}

// ValidateStreamName checks a JetStream stream name.
func ValidateStreamName(name string) error {
	if name == "" {
		return errors.New("stream name is empty")
	}
	if strings.ContainsAny(name, " \t\r\n.*>/\\") {
		return fmt.Errorf("stream name %q may not contain whitespace, '.', '*', '>', '/' or '\\'", name)
	}
	return nil
}
