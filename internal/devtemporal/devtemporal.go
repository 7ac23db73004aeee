// Package devtemporal runs a single-process Temporal server for `seqrelay
// dev`: every service in this process, its state in one SQLite file (so
// workflows survive a restart of seqrelay dev), the namespace registered at
// start. It is for development; production runs a real Temporal cluster.
package devtemporal

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

// Options configure the server.
type Options struct {
	// DatabaseFile keeps the server's state; created with its schema when
	// missing. Empty means in memory.
	DatabaseFile string
	// Host to listen on (default 127.0.0.1).
	Host string
	// Port of the frontend (default 7233; 0 for any free port).
	Port int
	// Namespace to register (default "default").
	Namespace string
	// Logger for the server's own logs (default: none).
	Logger log.Logger
}

// Server is a running dev server.
type Server struct {
	srv       temporal.Server
	hostPort  string
	namespace string
}

// Start starts the server and returns once its frontend is up.
func Start(o Options) (*Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Logger == nil {
		o.Logger = log.NewNoopLogger()
	}
	ports, err := freePorts(o.Host, 8)
	if err != nil {
		return nil, err
	}
	if o.Port == 0 {
		o.Port = ports[0]
	} else if err := checkFree(o.Host, o.Port); err != nil {
		return nil, fmt.Errorf("temporal dev server: port %d is taken (%v): pass another port, or 0 for any free one", o.Port, err)
	}
	hostPort := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))

	sqlCfg := &config.SQL{PluginName: sqliteplugin.PluginName, ConnectAttributes: map[string]string{}}
	if o.DatabaseFile == "" {
		sqlCfg.DatabaseName = "seqrelay-dev-" + strconv.Itoa(ports[1])
		sqlCfg.ConnectAttributes["mode"] = "memory"
		sqlCfg.ConnectAttributes["cache"] = "shared"
	} else {
		sqlCfg.DatabaseName = o.DatabaseFile
		sqlCfg.ConnectAttributes["mode"] = "rwc"
		if _, err := os.Stat(o.DatabaseFile); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(o.DatabaseFile), 0o755); err != nil {
				return nil, fmt.Errorf("temporal dev server: %w", err)
			}
			if err := sqlite.SetupSchema(sqlCfg); err != nil {
				return nil, fmt.Errorf("temporal dev server: create the schema in %s: %w", o.DatabaseFile, err)
			}
		}
	}

	cfg := &config.Config{}
	cfg.Global.Membership = config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: o.Host}
	cfg.Global.PProf = config.PProf{Port: 0}
	cfg.Persistence = config.Persistence{
		DefaultStore:     sqliteplugin.PluginName,
		VisibilityStore:  sqliteplugin.PluginName,
		NumHistoryShards: 1,
		DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
	}
	cfg.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        "active",
		CurrentClusterName:       "active",
		ClusterInformation: map[string]cluster.ClusterInformation{
			"active": {Enabled: true, InitialFailoverVersion: 1, RPCAddress: hostPort},
		},
	}
	cfg.DCRedirectionPolicy = config.DCRedirectionPolicy{Policy: "noop"}
	service := func(grpc, membership int, bindIP string) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: grpc, MembershipPort: membership, BindOnIP: bindIP}}
	}
	cfg.Services = map[string]config.Service{
		"frontend": service(o.Port, ports[2], o.Host),
		"history":  service(ports[3], ports[4], o.Host),
		"matching": service(ports[5], ports[6], o.Host),
		"worker":   service(ports[7], ports[1], o.Host),
	}
	cfg.Archival = config.Archival{
		History:    config.HistoryArchival{State: "disabled"},
		Visibility: config.VisibilityArchival{State: "disabled"},
	}
	cfg.NamespaceDefaults = config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
		History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
		Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
	}}
	cfg.PublicClient = config.PublicClient{HostPort: hostPort}

	ns, err := sqlite.NewNamespaceConfig("active", o.Namespace, false, nil)
	if err != nil {
		return nil, fmt.Errorf("temporal dev server: %w", err)
	}
	if err := sqlite.CreateNamespaces(sqlCfg, ns); err != nil {
		return nil, fmt.Errorf("temporal dev server: register namespace %q: %w", o.Namespace, err)
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(o.Logger),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{}),
	)
	if err != nil {
		return nil, fmt.Errorf("temporal dev server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("temporal dev server: start: %w", err)
	}
	return &Server{srv: srv, hostPort: hostPort, namespace: o.Namespace}, nil
}

// HostPort is the frontend address, such as 127.0.0.1:7233.
func (s *Server) HostPort() string { return s.hostPort }

// Namespace is the registered namespace.
func (s *Server) Namespace() string { return s.namespace }

// Stop stops the server.
func (s *Server) Stop() error { return s.srv.Stop() }

func freePorts(host string, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("temporal dev server: find free ports: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func checkFree(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}
