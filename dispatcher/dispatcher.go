package dispatcher

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"
)

// Dispatcher handles reliable delivery of events from a watcher to NATS. It
// maintains sequence ordering, handles retries, and provides checkpointing
// for resuming after restarts. It is the in-process runtime: embed it in a
// service or a test.
type Dispatcher struct {
	publisher Publisher
	watcher   Watcher
	relay     *Relay
	cfg       Config
	log       *slog.Logger

	mu       sync.Mutex // guards the fields below
	running  bool
	progress *Progress
	stop     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
}

// New creates a new Dispatcher with the given configuration and
// dependencies. The publisher publishes messages to NATS (see package
// publish). The watcher provides the source of events and keeps the
// checkpoint (see eventlog.NewWatcher). The messageCreator determines how
// events are converted to messages (see SubjectCreator). Zero Config fields
// take their defaults. Returns an error if any dependency is nil or if
// config validation fails.
func New(publisher Publisher, watcher Watcher, messageCreator MessageCreator, config Config, opts ...Option) (*Dispatcher, error) {
	for _, dep := range []struct {
		name string
		v    any
	}{{"publisher", publisher}, {"watcher", watcher}, {"message creator", messageCreator}} {
		if isNil(dep.v) {
			return nil, opError("new", fmt.Errorf("%w: the %s is nil", ErrNilDependency, dep.name))
		}
	}
	relay, err := NewRelay(watcher.ID(), watcher, messageCreator, config, opts...)
	if err != nil {
		return nil, opError("new", err)
	}
	return &Dispatcher{
		publisher: publisher,
		watcher:   watcher,
		relay:     relay,
		cfg:       relay.cfg,
		log:       relay.o.logger.With("dispatcher", watcher.ID()),
	}, nil
}

// Start loads the checkpoint and begins delivering events in the
// background: publishing, processing acknowledgements, checking for stalls,
// checkpointing, and recovering from failures. ctx bounds the start-up only;
// delivery runs until Stop. Returns an error if the dispatcher is already
// running or if the watcher cannot load the checkpoint.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running {
		return opError("start", ErrAlreadyRunning)
	}
	lctx, cancel := context.WithTimeout(ctx, d.cfg.SeekTimeout)
	cp, err := d.watcher.LastCheckpoint(lctx)
	cancel()
	if err != nil {
		return opError("start", fmt.Errorf("load checkpoint: %w", err))
	}
	d.progress = NewProgress(NewTracker(State{LastCheckpoint: cp}))
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	d.running, d.cancel = true, cancelRun
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go d.run(runCtx, d.progress, d.stop, d.done)
	d.log.Info("dispatcher started", "checkpoint", cp)
	return nil
}

// Stop stops delivery gracefully: it stops reading, waits for the
// acknowledgements of messages in flight, and stores a final checkpoint. If
// ctx ends first, delivery is cut short and Stop returns ctx's error. Stop is
// idempotent: stopping a stopped dispatcher returns nil.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return nil
	}
	d.running = false
	close(d.stop)
	defer d.cancel()
	select {
	case <-d.done:
	case <-ctx.Done():
		d.cancel()
		<-d.done // everything selects on the cancelled context: prompt
		d.log.Warn("dispatcher stop cut short", "error", ctx.Err(), "state", d.progress.State())
		return opError("stop", fmt.Errorf("in-flight acknowledgements not awaited, final checkpoint not stored: %w", ctx.Err()))
	}
	if err := d.checkpoint(ctx, d.progress); err != nil {
		return opError("stop", err)
	}
	d.log.Info("dispatcher stopped", "state", d.progress.State())
	return nil
}

// State returns the dispatcher's progress. It is the zero State before the
// first Start, and stays truthful while the dispatcher recovers and after
// it stops.
func (d *Dispatcher) State() State {
	if p := d.currentProgress(); p != nil {
		return p.State()
	}
	return State{}
}

// Status returns State with counters, the last error, and whether the
// dispatcher is recovering or halted.
func (d *Dispatcher) Status() Status {
	if p := d.currentProgress(); p != nil {
		return p.Status()
	}
	return Status{}
}

func (d *Dispatcher) currentProgress() *Progress {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.progress
}

func (d *Dispatcher) run(ctx context.Context, p *Progress, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	var wg sync.WaitGroup
	cpCtx, stopCheckpoints := context.WithCancel(ctx)
	if d.cfg.CheckpointEnabled() {
		wg.Go(func() { d.checkpointLoop(cpCtx, p) })
	}
	d.deliver(ctx, p, stop)
	stopCheckpoints()
	wg.Wait()
}

func (d *Dispatcher) checkpointLoop(ctx context.Context, p *Progress) {
	t := time.NewTicker(d.cfg.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := d.checkpoint(ctx, p); err != nil && ctx.Err() == nil {
				d.log.Warn("checkpoint failed; retrying at the next interval", "error", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// checkpoint stores the checkpoint target if it moved.
func (d *Dispatcher) checkpoint(ctx context.Context, p *Progress) error {
	if !d.cfg.CheckpointEnabled() {
		return nil
	}
	target, need := p.checkpointTarget()
	if !need {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.CheckpointTimeout)
	defer cancel()
	if err := d.watcher.Checkpoint(ctx, target); err != nil {
		return fmt.Errorf("checkpoint at %d: %w", target, err)
	}
	p.checkpointed(target)
	return nil
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Interface, reflect.Chan:
		return rv.IsNil()
	}
	return false
}
