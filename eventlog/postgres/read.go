package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/seqrelay/seqrelay/eventlog"
)

// pruneChunk bounds the rows one DELETE of Prune removes.
const pruneChunk = 10000

// Read implements eventlog.Log. In the same round trip as the read it asks
// whether committed events wait for a number; when they do and the read
// came up short, it runs the sequencer and reads on.
func (l *Log) Read(ctx context.Context, after uint64, limit int) ([]eventlog.Event, error) {
	if l.closed.Load() {
		return nil, eventlog.ErrClosed
	}
	if limit <= 0 {
		return nil, nil
	}
	var (
		b       pgx.Batch
		pending bool
		out     []eventlog.Event
	)
	b.Queue(l.q.pending).QueryRow(func(row pgx.Row) error { return row.Scan(&pending) })
	b.Queue(l.q.read, int64(after), limit).Query(func(rows pgx.Rows) error {
		var err error
		out, err = scanEvents(rows, limit)
		return err
	})
	if err := l.pool.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("read after %d: %w", after, err)
	}
	if !pending || len(out) == limit {
		return out, nil
	}
	if _, err := l.sequence(ctx); err != nil {
		return nil, fmt.Errorf("read after %d: %w", after, err)
	}
	from := after
	if len(out) > 0 {
		from = out[len(out)-1].Seq
	}
	rows, err := l.pool.Query(ctx, l.q.read, int64(from), limit-len(out))
	if err != nil {
		return nil, fmt.Errorf("read after %d: %w", from, err)
	}
	more, err := scanEvents(rows, limit-len(out))
	if err != nil {
		return nil, fmt.Errorf("read after %d: %w", from, err)
	}
	return append(out, more...), nil
}

func scanEvents(rows pgx.Rows, limit int) ([]eventlog.Event, error) {
	defer rows.Close()
	out := make([]eventlog.Event, 0, min(limit, 1024))
	for rows.Next() {
		var (
			e       eventlog.Event
			seq     int64
			meta    []byte
			created time.Time
		)
		if err := rows.Scan(&seq, &e.Type, &e.Payload, &meta, &created); err != nil {
			return nil, err
		}
		e.Seq = uint64(seq)
		e.Time = created.UTC()
		if len(meta) > 0 {
			if err := json.Unmarshal(meta, &e.Metadata); err != nil {
				return nil, fmt.Errorf("event %d: metadata is not a JSON object of strings: %w", seq, err)
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Appended implements eventlog.Log. It is woken by appends through this Log
// value and, through LISTEN/NOTIFY, by commits of events anywhere.
func (l *Log) Appended() <-chan struct{} { return l.notify.Wait() }

// Head implements eventlog.Log: it numbers waiting events, then returns the
// highest sequence number handed out (which pruning does not lower).
func (l *Log) Head(ctx context.Context) (uint64, error) {
	if l.closed.Load() {
		return 0, eventlog.ErrClosed
	}
	if err := l.sequenceAll(ctx); err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	var head int64
	if err := l.pool.QueryRow(ctx, `SELECT last_seq FROM `+l.q.sequencer).Scan(&head); err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	return uint64(head), nil
}

// LastCheckpoint implements eventlog.Log.
func (l *Log) LastCheckpoint(ctx context.Context, id string) (uint64, error) {
	if err := eventlog.ValidateReaderID(id); err != nil {
		return 0, err
	}
	if l.closed.Load() {
		return 0, eventlog.ErrClosed
	}
	var seq int64
	err := l.pool.QueryRow(ctx, `SELECT seq FROM `+l.q.checkpoints+` WHERE id = $1`, id).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load checkpoint %q: %w", id, err)
	}
	return uint64(seq), nil
}

// Checkpoint implements eventlog.Log. The stored value never moves back.
func (l *Log) Checkpoint(ctx context.Context, id string, seq uint64) error {
	if err := eventlog.ValidateReaderID(id); err != nil {
		return err
	}
	if l.closed.Load() {
		return eventlog.ErrClosed
	}
	_, err := l.pool.Exec(ctx, `INSERT INTO `+l.q.checkpoints+` AS c (id, seq, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (id) DO UPDATE SET seq = GREATEST(c.seq, excluded.seq), updated_at = excluded.updated_at`,
		id, int64(seq))
	if err != nil {
		return fmt.Errorf("store checkpoint %q at %d: %w", id, seq, err)
	}
	return nil
}

// Prune deletes the events at or below the lowest checkpoint recorded (the
// slowest dispatcher's), in chunks, and returns how many it deleted. With
// no checkpoint recorded it deletes nothing. Sequence numbers are never
// reused after pruning.
func (l *Log) Prune(ctx context.Context) (deleted int64, err error) {
	if l.closed.Load() {
		return 0, eventlog.ErrClosed
	}
	var low *int64
	if err := l.pool.QueryRow(ctx, `SELECT min(seq) FROM `+l.q.checkpoints).Scan(&low); err != nil {
		return 0, fmt.Errorf("prune: read the checkpoints: %w", err)
	}
	if low == nil {
		return 0, nil
	}
	for {
		tag, err := l.pool.Exec(ctx, `DELETE FROM `+l.q.events+` WHERE id IN (
			SELECT id FROM `+l.q.events+` WHERE seq <= $1 ORDER BY seq LIMIT $2)`, *low, pruneChunk)
		if err != nil {
			return deleted, fmt.Errorf("prune at or below %d: %w", *low, err)
		}
		deleted += tag.RowsAffected()
		if tag.RowsAffected() < pruneChunk {
			return deleted, nil
		}
	}
}
