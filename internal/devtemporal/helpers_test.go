package devtemporal

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func splitPort(t *testing.T, hostPort string) (string, int) {
	h, p, err := net.SplitHostPort(hostPort)
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)
	return h, port
}
