package eventlog

import (
	"context"
	"maps"
	"sort"
	"sync"
	"time"
)

// Memory is an in-memory Log for tests and for embedding where durability
// is not needed. The zero value is not usable: call NewMemory.
type Memory struct {
	mu          sync.RWMutex
	events      []Event // events[i].Seq == first+i
	first       uint64  // Seq of events[0]
	next        uint64  // next Seq to assign
	checkpoints map[string]uint64
	closed      bool
	notify      Notifier
	now         func() time.Time
}

var _ Log = (*Memory)(nil)

// NewMemory returns an empty in-memory log.
func NewMemory() *Memory {
	return &Memory{first: 1, next: 1, checkpoints: map[string]uint64{}, now: time.Now}
}

// Append implements Log.
func (m *Memory) Append(ctx context.Context, events ...Event) ([]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ValidateAll(events); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	seqs := make([]uint64, len(events))
	now := m.now().UTC()
	for i, e := range events {
		e.Seq = m.next
		e.Time = now
		e.Payload = append([]byte(nil), e.Payload...)
		e.Metadata = maps.Clone(e.Metadata)
		m.events = append(m.events, e)
		seqs[i] = m.next
		m.next++
	}
	m.mu.Unlock()
	if len(events) > 0 {
		m.notify.Notify()
	}
	return seqs, nil
}

// Read implements Log.
func (m *Memory) Read(ctx context.Context, after uint64, limit int) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	i := sort.Search(len(m.events), func(i int) bool { return m.events[i].Seq > after })
	end := min(len(m.events), i+max(limit, 0))
	out := make([]Event, end-i)
	copy(out, m.events[i:end])
	return out, nil
}

// Appended implements Log.
func (m *Memory) Appended() <-chan struct{} { return m.notify.Wait() }

// Head implements Log.
func (m *Memory) Head(ctx context.Context) (uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.next - 1, nil
}

// LastCheckpoint implements Log.
func (m *Memory) LastCheckpoint(ctx context.Context, id string) (uint64, error) {
	if err := ValidateReaderID(id); err != nil {
		return 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.checkpoints[id], nil
}

// Checkpoint implements Log.
func (m *Memory) Checkpoint(ctx context.Context, id string, seq uint64) error {
	if err := ValidateReaderID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.checkpoints[id] = max(m.checkpoints[id], seq)
	return nil
}

// Close implements Log.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
