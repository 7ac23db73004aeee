package eventlog

import "context"

// Watcher binds a Log to one reader (dispatcher) ID: it reads the log and
// keeps that reader's checkpoint. It is what dispatcher.New takes as its
// watcher.
type Watcher struct {
	log Log
	id  string
}

// NewWatcher returns a Watcher of log for the reader id. The id names the
// dispatcher: its checkpoint and the message IDs it publishes derive from it.
func NewWatcher(log Log, id string) (*Watcher, error) {
	if err := ValidateReaderID(id); err != nil {
		return nil, err
	}
	return &Watcher{log: log, id: id}, nil
}

// ID returns the reader ID.
func (w *Watcher) ID() string { return w.id }

// Read returns up to limit events after the given sequence number.
func (w *Watcher) Read(ctx context.Context, after uint64, limit int) ([]Event, error) {
	return w.log.Read(ctx, after, limit)
}

// Appended returns a channel closed at the next append the log sees.
func (w *Watcher) Appended() <-chan struct{} { return w.log.Appended() }

// LastCheckpoint returns the reader's stored checkpoint.
func (w *Watcher) LastCheckpoint(ctx context.Context) (uint64, error) {
	return w.log.LastCheckpoint(ctx, w.id)
}

// Checkpoint stores the reader's checkpoint.
func (w *Watcher) Checkpoint(ctx context.Context, seq uint64) error {
	return w.log.Checkpoint(ctx, w.id, seq)
}
