package devtemporal

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func hello(ctx workflow.Context, name string) (string, error) { return "hello " + name, nil }

// TestServerKeepsWorkflowsAcrossRestarts runs a workflow on a file-backed
// dev server, restarts the server on the same file, and finds the workflow.
func TestServerKeepsWorkflowsAcrossRestarts(t *testing.T) {
	db := filepath.Join(t.TempDir(), "temporal.db")
	s, err := Start(Options{DatabaseFile: db, Port: 0})
	require.NoError(t, err)
	c, err := client.Dial(client.Options{HostPort: s.HostPort(), Namespace: s.Namespace()})
	require.NoError(t, err)
	w := worker.New(c, "q", worker.Options{})
	w.RegisterWorkflow(hello)
	require.NoError(t, w.Start())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "w1", TaskQueue: "q"}, hello, "dev")
	require.NoError(t, err)
	var out string
	require.NoError(t, run.Get(ctx, &out))
	require.Equal(t, "hello dev", out)
	w.Stop()
	c.Close()
	require.NoError(t, s.Stop())

	s, err = Start(Options{DatabaseFile: db, Port: 0})
	require.NoError(t, err)
	defer s.Stop()
	c, err = client.Dial(client.Options{HostPort: s.HostPort(), Namespace: "default"})
	require.NoError(t, err)
	defer c.Close()
	desc, err := c.DescribeWorkflowExecution(ctx, "w1", "")
	require.NoError(t, err)
	require.Equal(t, "hello", desc.WorkflowExecutionInfo.Type.Name)
}

func TestPortTaken(t *testing.T) {
	s, err := Start(Options{Port: 0})
	require.NoError(t, err)
	defer s.Stop()
	_, port := splitPort(t, s.HostPort())
	_, err = Start(Options{Port: port})
	require.ErrorContains(t, err, "is taken")
}
