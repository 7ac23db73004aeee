package verify

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSeqs(t *testing.T) {
	for _, tc := range []struct {
		name       string
		seqs       []uint64
		inOrder    bool
		dups, gaps uint64
		exactly    bool
	}{
		{"empty", nil, true, 0, 0, false},
		{"clean", []uint64{1, 2, 3}, true, 0, 0, true},
		{"duplicate", []uint64{1, 2, 2, 3}, false, 1, 0, false},
		{"gap", []uint64{1, 3}, true, 0, 1, false},
		{"reordered", []uint64{2, 1, 3}, false, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Seqs(tc.seqs)
			assert.Equal(t, tc.inOrder, r.InOrder, r.String())
			assert.Equal(t, tc.dups, r.Duplicates)
			assert.Equal(t, tc.gaps, r.Gaps)
			assert.Equal(t, tc.exactly, r.ExactlyOnce(1, 3))
			if !tc.exactly && len(tc.seqs) > 0 {
				assert.NotEmpty(t, r.FirstProblem)
			}
		})
	}
}
