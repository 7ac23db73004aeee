package postgres_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5"

	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/postgres"
)

// The event commits with the order, or not at all: a dispatcher watching
// the log (eventlog.NewWatcher(events, "orders")) delivers it after the
// commit.
func ExampleLog_AppendTx() {
	ctx := context.Background()
	events, err := postgres.Open(ctx, "postgres://app:secret@db.internal:5432/shop", postgres.WithMigrate())
	if err != nil {
		log.Fatal(err)
	}
	defer events.Close()

	err = pgx.BeginFunc(ctx, events.Pool(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO orders (id, total) VALUES ($1, $2)`, 42, 1999); err != nil {
			return err
		}
		return events.AppendTx(ctx, tx, eventlog.Event{
			Type:     "order.created",
			Payload:  []byte(`{"id":42,"total":1999}`),
			Metadata: map[string]string{"tenant": "acme"},
		})
	})
	if err != nil {
		log.Fatal(err)
	}
}
