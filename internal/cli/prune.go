package cli

import (
	"context"
	"fmt"
)

// pruner is a store that can delete the events every dispatcher has
// delivered.
type pruner interface {
	Prune(ctx context.Context) (deleted int64, err error)
}

func pruneCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("prune", io, "Deletes the events that every dispatcher has delivered: those at or below the lowest\n"+
		"checkpoint recorded in the store. Deletes nothing when no checkpoint is recorded.\n"+
		"Sequence numbers are never reused afterwards. A dispatcher ID no longer in use holds\n"+
		"pruning back: remove its checkpoint from the store.")
	sf := addStoreFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	log, path, err := sf.open(ctx, false)
	if err != nil {
		return err
	}
	defer log.Close()
	p, ok := log.(pruner)
	if !ok {
		return fmt.Errorf("the store %s cannot prune", path)
	}
	n, err := p.Prune(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "pruned %d events from %s\n", n, path)
	return nil
}
