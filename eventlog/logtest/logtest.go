// Package logtest is the conformance suite every eventlog.Log passes. A store
// package calls Run with a function that opens a fresh, empty log.
package logtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/eventlog"
)

// Open returns a fresh, empty log; the suite closes it.
type Open func(t *testing.T) eventlog.Log

// Run runs the conformance suite against the logs open returns.
func Run(t *testing.T, open Open) {
	t.Run("AppendAssignsIncreasingSeqs", func(t *testing.T) { testAppendRead(t, open) })
	t.Run("ReadLimitAndAfter", func(t *testing.T) { testReadLimit(t, open) })
	t.Run("RejectsInvalidEvents", func(t *testing.T) { testInvalid(t, open) })
	t.Run("AppendedWakesWaiters", func(t *testing.T) { testAppended(t, open) })
	t.Run("CheckpointsNeverMoveBack", func(t *testing.T) { testCheckpoints(t, open) })
	t.Run("ConcurrentAppendersAndReader", func(t *testing.T) { testConcurrent(t, open) })
	t.Run("ClosedLogErrors", func(t *testing.T) { testClosed(t, open) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func openLog(t *testing.T, open Open) eventlog.Log {
	l := open(t)
	t.Cleanup(func() { l.Close() })
	return l
}

func testAppendRead(t *testing.T, open Open) {
	l := openLog(t, open)
	c := ctx(t)
	head, err := l.Head(c)
	require.NoError(t, err)
	require.Zero(t, head)

	seqs, err := l.Append(c,
		eventlog.Event{Type: "order.created", Payload: []byte(`{"id":1}`), Metadata: map[string]string{"tenant": "a"}},
		eventlog.Event{Type: "order.paid", Payload: nil},
	)
	require.NoError(t, err)
	require.Len(t, seqs, 2)
	assert.Greater(t, seqs[1], seqs[0])

	more, err := l.Append(c, eventlog.Event{Type: "order.shipped", Payload: []byte("x")})
	require.NoError(t, err)
	require.Greater(t, more[0], seqs[1])

	evs, err := l.Read(c, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 3)
	assert.Equal(t, seqs[0], evs[0].Seq)
	assert.Equal(t, "order.created", evs[0].Type)
	assert.Equal(t, []byte(`{"id":1}`), evs[0].Payload)
	assert.Equal(t, map[string]string{"tenant": "a"}, evs[0].Metadata)
	assert.WithinDuration(t, time.Now(), evs[0].Time, time.Minute)
	assert.Empty(t, evs[1].Payload)
	assert.Empty(t, evs[1].Metadata)
	assert.Equal(t, more[0], evs[2].Seq)

	head, err = l.Head(c)
	require.NoError(t, err)
	assert.Equal(t, more[0], head)
}

func testReadLimit(t *testing.T, open Open) {
	l := openLog(t, open)
	c := ctx(t)
	batch := make([]eventlog.Event, 25)
	for i := range batch {
		batch[i] = eventlog.Event{Type: "t", Payload: []byte(fmt.Sprint(i))}
	}
	seqs, err := l.Append(c, batch...)
	require.NoError(t, err)

	got, err := l.Read(c, seqs[4], 10)
	require.NoError(t, err)
	require.Len(t, got, 10)
	for i, e := range got {
		assert.Equal(t, seqs[5+i], e.Seq)
		assert.Equal(t, fmt.Sprint(5+i), string(e.Payload))
	}
	got, err = l.Read(c, seqs[24], 10)
	require.NoError(t, err)
	assert.Empty(t, got)
	got, err = l.Read(c, 0, 0)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func testInvalid(t *testing.T, open Open) {
	l := openLog(t, open)
	c := ctx(t)
	for name, e := range map[string]eventlog.Event{
		"empty type":   {Type: ""},
		"long type":    {Type: string(make([]byte, eventlog.MaxTypeLen+1))},
		"bad utf8":     {Type: "\xff"},
		"empty md key": {Type: "t", Metadata: map[string]string{"": "v"}},
	} {
		_, err := l.Append(c, eventlog.Event{Type: "ok"}, e)
		assert.ErrorIs(t, err, eventlog.ErrInvalidEvent, name)
	}
	// Nothing of a rejected batch is stored.
	head, err := l.Head(c)
	require.NoError(t, err)
	assert.Zero(t, head)

	_, err = l.LastCheckpoint(c, "")
	assert.ErrorIs(t, err, eventlog.ErrInvalidReaderID)
	assert.ErrorIs(t, l.Checkpoint(c, "", 1), eventlog.ErrInvalidReaderID)
}

func testAppended(t *testing.T, open Open) {
	l := openLog(t, open)
	c := ctx(t)
	ch := l.Appended()
	select {
	case <-ch:
		t.Fatal("Appended fired before any append")
	default:
	}
	go func() { _, _ = l.Append(c, eventlog.Event{Type: "t"}) }()
	select {
	case <-ch:
	case <-c.Done():
		t.Fatal("Appended did not fire after an append")
	}
}

func testCheckpoints(t *testing.T, open Open) {
	l := openLog(t, open)
	c := ctx(t)
	cp, err := l.LastCheckpoint(c, "a")
	require.NoError(t, err)
	require.Zero(t, cp)
	require.NoError(t, l.Checkpoint(c, "a", 7))
	require.NoError(t, l.Checkpoint(c, "b", 3))
	require.NoError(t, l.Checkpoint(c, "a", 5)) // ignored: lower
	cp, err = l.LastCheckpoint(c, "a")
	require.NoError(t, err)
	assert.EqualValues(t, 7, cp)
	cp, err = l.LastCheckpoint(c, "b")
	require.NoError(t, err)
	assert.EqualValues(t, 3, cp)
	require.NoError(t, l.Checkpoint(c, "a", 9))
	cp, err = l.LastCheckpoint(c, "a")
	require.NoError(t, err)
	assert.EqualValues(t, 9, cp)
}

// testConcurrent has four writers append while a reader follows the log: the
// reader sees every event once, in strictly increasing order, with no gap
// between what it sees and what was assigned.
func testConcurrent(t *testing.T, open Open) {
	l := openLog(t, open)
	c := ctx(t)
	const writers, perWriter, batch = 4, 200, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < perWriter; i += batch {
				evs := make([]eventlog.Event, batch)
				for j := range evs {
					evs[j] = eventlog.Event{Type: "w", Payload: fmt.Appendf(nil, "%d-%d", w, i+j)}
				}
				if _, err := l.Append(c, evs...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	seen := map[string]bool{}
	var last uint64
	for len(seen) < writers*perWriter {
		wake := l.Appended()
		evs, err := l.Read(c, last, 64)
		require.NoError(t, err)
		for _, e := range evs {
			require.Greater(t, e.Seq, last, "out of order")
			last = e.Seq
			require.False(t, seen[string(e.Payload)], "duplicate %s", e.Payload)
			seen[string(e.Payload)] = true
		}
		if len(evs) == 0 {
			select {
			case <-wake:
			case <-time.After(20 * time.Millisecond): // appends by other connections are polled
			case err := <-errs:
				t.Fatal(err)
			case <-c.Done():
				t.Fatalf("reader saw %d of %d events", len(seen), writers*perWriter)
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testClosed(t *testing.T, open Open) {
	l := open(t)
	c := ctx(t)
	require.NoError(t, l.Close())
	_, err := l.Append(c, eventlog.Event{Type: "t"})
	assert.ErrorIs(t, err, eventlog.ErrClosed)
	_, err = l.Read(c, 0, 1)
	assert.ErrorIs(t, err, eventlog.ErrClosed)
	assert.ErrorIs(t, l.Checkpoint(c, "a", 1), eventlog.ErrClosed)
}
