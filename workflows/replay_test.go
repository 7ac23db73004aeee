package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/seqrelay/seqrelay/workflows"
)

// TestReplayRecordedHistories replays histories of real runs (recorded by
// worker.TestEndToEnd with SEQRELAY_RECORD_HISTORY=<file>): a change to the
// workflow that would break running workflows fails here. When a change is
// meant to be incompatible, version it with workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/history_*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.DispatcherWorkflow, workflow.RegisterOptions{Name: workflows.WorkflowName})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
