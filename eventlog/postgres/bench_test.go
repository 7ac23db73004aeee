package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/postgres"
	"github.com/seqrelay/seqrelay/eventlog/postgres/pgtest"
	"github.com/seqrelay/seqrelay/eventlog/sqlite"
)

// BenchmarkAppend measures append throughput of PostgreSQL beside SQLite in
// the same run: transactions of 1 and of 100 events (256-byte payloads), by
// one writer and by 8 at once. One op is one event. The postgres-tx store
// is the outbox path: BEGIN, AppendTx, COMMIT in the application's own
// transaction, numbered later by the reader (here: by Head, inside the
// timing). Run it with:
//
//	SEQRELAY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	    go test -run '^$' -bench Append -count 6 ./eventlog/postgres | tee append.txt
func BenchmarkAppend(b *testing.B) {
	payload := make([]byte, 256)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	for _, store := range []string{"sqlite", "postgres", "postgres-tx"} {
		for _, batch := range []int{1, 100} {
			for _, writers := range []int{1, 8} {
				b.Run(fmt.Sprintf("store=%s/batch=%d/writers=%d", store, batch, writers), func(b *testing.B) {
					appendOne, finish := openForBench(b, store)
					evs := make([]eventlog.Event, batch)
					for i := range evs {
						evs[i] = eventlog.Event{Type: "bench", Payload: payload}
					}
					txs := max(1, b.N/batch)
					b.ResetTimer()
					var wg sync.WaitGroup
					errs := make(chan error, writers)
					for w := range writers {
						wg.Go(func() {
							for i := w; i < txs; i += writers {
								if err := appendOne(evs); err != nil {
									errs <- err
									return
								}
							}
						})
					}
					wg.Wait()
					close(errs)
					for err := range errs {
						b.Fatal(err)
					}
					require.NoError(b, finish())
					b.StopTimer()
					b.ReportMetric(float64(txs*batch)/b.Elapsed().Seconds(), "events/s")
				})
			}
		}
	}
}

// openForBench opens a fresh log of the store and returns a function that
// appends one transaction, and one that finishes the run: Head, which for
// postgres-tx numbers the events (inside the timing).
func openForBench(b *testing.B, store string) (appendOne func([]eventlog.Event) error, finish func() error) {
	ctx := context.Background()
	var l eventlog.Log
	finish = func() error { _, err := l.Head(ctx); return err }
	if store == "sqlite" {
		sl, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "events.db"), sqlite.WithCreate())
		require.NoError(b, err)
		b.Cleanup(func() { sl.Close() })
		l = sl
		return func(evs []eventlog.Event) error { _, err := sl.Append(ctx, evs...); return err }, finish
	}
	url := pgtest.URL(b)
	pl, err := postgres.Open(ctx, url, postgres.WithSchema(pgtest.Schema(b, url)), postgres.WithMigrate(), postgres.WithMaxConns(10))
	require.NoError(b, err)
	b.Cleanup(func() { pl.Close() })
	l = pl
	if store == "postgres" {
		return func(evs []eventlog.Event) error { _, err := pl.Append(ctx, evs...); return err }, finish
	}
	pool := pl.Pool()
	return func(evs []eventlog.Event) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
		if err := pl.AppendTx(ctx, tx, evs...); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}, finish
}
