package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/seqrelay/seqrelay/eventlog"
)

// sqlChunk bounds the rows of one INSERT of AppendSQLTx (three parameters
// each, under PostgreSQL's 65535).
const sqlChunk = 1000

// AppendTx inserts events inside the caller's pgx transaction: they become
// visible, and get their sequence numbers, when tx commits, and vanish if it
// rolls back. The events of one call keep their order. tx may belong to any
// pool or connection on the same database.
func (l *Log) AppendTx(ctx context.Context, tx pgx.Tx, events ...eventlog.Event) error {
	_, err := l.insert(ctx, tx, events)
	return err
}

// AppendSQLTx is AppendTx for a database/sql transaction, with any
// PostgreSQL driver (pgx's stdlib, lib/pq).
func (l *Log) AppendSQLTx(ctx context.Context, tx *sql.Tx, events ...eventlog.Event) error {
	if l.closed.Load() {
		return eventlog.ErrClosed
	}
	if err := eventlog.ValidateAll(events); err != nil {
		return err
	}
	for chunk := range slices.Chunk(events, sqlChunk) {
		var b strings.Builder
		b.WriteString(`INSERT INTO ` + l.q.events + ` (type, payload, metadata) VALUES `)
		args := make([]any, 0, 3*len(chunk))
		for i, e := range chunk {
			meta, err := encodeMetadata(e.Metadata)
			if err != nil {
				return err
			}
			if i > 0 {
				b.WriteString(", ")
			}
			n := 3 * i
			b.WriteString("($" + strconv.Itoa(n+1) + ", $" + strconv.Itoa(n+2) + ", $" + strconv.Itoa(n+3) + "::jsonb)")
			payload := e.Payload
			if payload == nil {
				payload = []byte{}
			}
			var m any
			if meta != nil {
				m = *meta
			}
			args = append(args, e.Type, payload, m)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("append in transaction: %w", err)
		}
	}
	return nil
}

// insert validates events and inserts them through tx, returning their ids
// in order.
func (l *Log) insert(ctx context.Context, tx pgx.Tx, events []eventlog.Event) ([]int64, error) {
	if l.closed.Load() {
		return nil, eventlog.ErrClosed
	}
	if err := eventlog.ValidateAll(events); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, nil
	}
	types := make([]string, len(events))
	payloads := make([][]byte, len(events))
	metas := make([]*string, len(events))
	for i, e := range events {
		types[i] = e.Type
		payloads[i] = e.Payload
		if payloads[i] == nil {
			payloads[i] = []byte{}
		}
		m, err := encodeMetadata(e.Metadata)
		if err != nil {
			return nil, err
		}
		metas[i] = m
	}
	rows, err := tx.Query(ctx, l.q.insert, types, payloads, metas)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// Append implements eventlog.Log: it appends events in one transaction of
// its own and returns the sequence numbers assigned. When the sequencer lock
// is free it numbers the events in that transaction (one commit); otherwise
// it commits, then runs the sequencer.
func (l *Log) Append(ctx context.Context, events ...eventlog.Event) ([]uint64, error) {
	if l.closed.Load() {
		return nil, eventlog.ErrClosed
	}
	if err := eventlog.ValidateAll(events); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, nil
	}
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	ids, err := l.insert(ctx, tx, events)
	if err != nil {
		return nil, err
	}
	var locked bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, $2)`, lockSpace, l.lockKey).Scan(&locked); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	seqs := map[int64]int64{}
	if locked {
		for {
			n, err := l.sequenceIn(ctx, tx, ids, seqs)
			if err != nil {
				return nil, fmt.Errorf("append: %w", err)
			}
			if n < sequenceChunk {
				break
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("append: commit: %w", err)
	}
	defer l.notify.Notify() // once numbered, when this Append numbers them
	if !locked {
		if err := l.sequenceAll(ctx); err != nil {
			return nil, fmt.Errorf("append: committed, but numbering failed (the events will be numbered by the next read): %w", err)
		}
		if err := l.lookupSeqs(ctx, ids, seqs); err != nil {
			return nil, fmt.Errorf("append: committed, but %w", err)
		}
	}
	out := make([]uint64, len(ids))
	for i, id := range ids {
		s, ok := seqs[id]
		if !ok {
			return nil, fmt.Errorf("append: committed, but event id %d got no sequence number", id)
		}
		out[i] = uint64(s)
	}
	return out, nil
}

// lookupSeqs reads the sequence numbers of ids into seqs.
func (l *Log) lookupSeqs(ctx context.Context, ids []int64, seqs map[int64]int64) error {
	rows, err := l.pool.Query(ctx, `SELECT id, seq FROM `+l.q.events+` WHERE id = ANY($1) AND seq IS NOT NULL`, ids)
	if err != nil {
		return fmt.Errorf("read the sequence numbers assigned: %w", err)
	}
	var id, seq int64
	_, err = pgx.ForEachRow(rows, []any{&id, &seq}, func() error {
		seqs[id] = seq
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the sequence numbers assigned: %w", err)
	}
	return nil
}

// sequenceIn runs one sequencer statement in tx, which holds the lock. It
// records in seqs the numbers given to own, and returns how many rows it
// numbered.
func (l *Log) sequenceIn(ctx context.Context, tx pgx.Tx, own []int64, seqs map[int64]int64) (int64, error) {
	var (
		n          int64
		ids, given []int64
	)
	if err := tx.QueryRow(ctx, l.q.sequence, sequenceChunk, own).Scan(&n, &ids, &given); err != nil {
		return 0, fmt.Errorf("number events: %w", err)
	}
	if seqs != nil {
		for i, id := range ids {
			seqs[id] = given[i]
		}
	}
	return n, nil
}

// sequence runs the sequencer once: it waits for the lock, numbers up to
// sequenceChunk committed rows, and commits. It returns how many it numbered.
func (l *Log) sequence(ctx context.Context) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockSpace, l.lockKey); err != nil {
			return err
		}
		var err error
		n, err = l.sequenceIn(ctx, tx, nil, nil)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sequencer: %w", err)
	}
	return n, nil
}

// sequenceAll runs the sequencer until no committed row waits.
func (l *Log) sequenceAll(ctx context.Context) error {
	var pending bool
	if err := l.pool.QueryRow(ctx, l.q.pending).Scan(&pending); err != nil {
		return fmt.Errorf("sequencer: %w", err)
	}
	if !pending {
		return nil
	}
	for {
		n, err := l.sequence(ctx)
		if err != nil || n < sequenceChunk {
			return err
		}
	}
}

func encodeMetadata(m map[string]string) (*string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("append: encode metadata: %w", err)
	}
	s := string(b)
	return &s, nil
}
