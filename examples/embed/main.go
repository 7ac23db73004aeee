package main

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/sqlite"
	"github.com/seqrelay/seqrelay/publish"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	events, err := sqlite.Open(ctx, "events.db", sqlite.WithCreate())
	if err != nil {
		log.Fatal(err)
	}
	defer events.Close()

	nc, err := nats.Connect(nats.DefaultURL, nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, _, err := publish.EnsureStream(ctx, js, publish.StreamConfig{
		Name: "ORDERS", Subjects: []string{"orders.>"},
	}); err != nil {
		log.Fatal(err)
	}

	publisher, _ := publish.NewJetStream(nc, "ORDERS")
	watcher, _ := eventlog.NewWatcher(events, "orders")  // the dispatcher ID
	creator, _ := dispatcher.NewSubjectCreator("orders") // type T -> subject orders.T
	d, err := dispatcher.New(publisher, watcher, creator, dispatcher.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		log.Fatal(err)
	}

	// Elsewhere, in the application:
	events.Append(ctx, eventlog.Event{Type: "created", Payload: []byte(`{"id":1}`)})

	<-ctx.Done()
	if err := d.Stop(context.Background()); err != nil {
		log.Print(err)
	}
	log.Printf("%+v", d.State())
}
