package publish

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/seqrelay/seqrelay/dispatcher"
)

// CoreGuarantee says what delivery to core NATS promises, for start-up
// messages and documentation.
const CoreGuarantee = "core NATS (no JetStream): a message is sent at most once per attempt and nothing stores it; " +
	"after a failure or a restart delivery resumes after the checkpoint, so subscribers get every event at least once " +
	"and must de-duplicate by " + dispatcher.KeySeqNum + " (or Nats-Msg-Id); subscribers that are away miss messages"

// Core publishes to core NATS subjects, for targets without JetStream.
// The server does not acknowledge core messages: a session counts a message
// as delivered once a flush (a PING answered by the server) shows that the
// server received everything published before it. Nothing is stored, so a
// session cannot find where a previous one stopped: delivery resumes after
// the checkpoint (see CoreGuarantee).
type Core struct {
	nc           *nats.Conn
	flushTimeout time.Duration
}

var _ dispatcher.Publisher = (*Core)(nil)

// NewCore returns a core NATS publisher; a flush that takes longer than
// flushTimeout (default 5s) fails the session.
func NewCore(nc *nats.Conn, flushTimeout time.Duration) (*Core, error) {
	if nc == nil {
		return nil, fmt.Errorf("publish: the NATS connection is nil")
	}
	if flushTimeout <= 0 {
		flushTimeout = 5 * time.Second
	}
	return &Core{nc: nc, flushTimeout: flushTimeout}, nil
}

// Begin implements dispatcher.Publisher.
func (c *Core) Begin(ctx context.Context) (dispatcher.Session, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if st := c.nc.Status(); st != nats.CONNECTED {
		return nil, fmt.Errorf("%w (connection is %s)", ErrNotConnected, st)
	}
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	s := &coreSession{
		nc:      c.nc,
		timeout: c.flushTimeout,
		acks:    make(chan dispatcher.Ack, 1024),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		status:  c.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED),
	}
	go s.flusher()
	return s, nil
}

type coreSession struct {
	nc      *nats.Conn
	timeout time.Duration
	acks    chan dispatcher.Ack
	kick    chan struct{}
	done    chan struct{}
	status  chan nats.Status
	once    sync.Once
	failed  atomic.Bool

	mu      sync.Mutex
	pending []uint64 // published, not yet flushed
}

func (s *coreSession) Tail() dispatcher.Tail       { return dispatcher.Tail{Known: false} }
func (s *coreSession) Acks() <-chan dispatcher.Ack { return s.acks }

func (s *coreSession) Publish(seq uint64, msg *nats.Msg) error {
	if s.failed.Load() {
		return ErrSessionClosed
	}
	msg.Reply = ""
	if err := s.nc.PublishMsg(msg); err != nil {
		return err
	}
	s.mu.Lock()
	s.pending = append(s.pending, seq)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// flusher acknowledges what a flush proves the server received, in order.
func (s *coreSession) flusher() {
	for {
		select {
		case <-s.done:
			return
		case st, ok := <-s.status:
			if ok {
				s.fail(fmt.Errorf("%w (connection is %s)", ErrDisconnected, st))
			}
			return
		case <-s.kick:
		}
		s.mu.Lock()
		batch := s.pending
		s.pending = nil
		s.mu.Unlock()
		if err := s.nc.FlushTimeout(s.timeout); err != nil {
			s.fail(fmt.Errorf("flush to core NATS: %w", err))
			return
		}
		for _, seq := range batch {
			select {
			case s.acks <- dispatcher.Ack{Seq: seq}:
			case <-s.done:
				return
			}
		}
	}
}

func (s *coreSession) fail(err error) {
	if s.failed.CompareAndSwap(false, true) {
		select {
		case s.acks <- dispatcher.Ack{Err: err}:
		case <-s.done:
		}
	}
}

func (s *coreSession) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.nc.RemoveStatusListener(s.status)
	})
	return nil
}
