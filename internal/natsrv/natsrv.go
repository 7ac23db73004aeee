// Package natsrv runs an embedded NATS server with JetStream, for the
// zero-set-up CLI commands and for tests.
package natsrv

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure the embedded server.
type Options struct {
	// Host to listen on (default 127.0.0.1).
	Host string
	// Port to listen on; 0 picks a free one.
	Port int
	// StoreDir is where JetStream keeps its files (required).
	StoreDir string
	// MaxPayload overrides the server's max message size (default 1 MiB).
	MaxPayload int32
	// Username and Password, when set, are required of clients.
	Username, Password string
}

// Server is a running embedded server that can be restarted on its port.
type Server struct {
	opts Options
	srv  *server.Server
}

// Start starts a server and waits until it accepts connections.
func Start(opts Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("embedded NATS: StoreDir is required")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		port, err := freePort(opts.Host)
		if err != nil {
			return nil, err
		}
		opts.Port = port
	}
	s := &Server{opts: opts}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	srv, err := server.NewServer(&server.Options{
		Host:       s.opts.Host,
		Port:       s.opts.Port,
		JetStream:  true,
		StoreDir:   s.opts.StoreDir,
		MaxPayload: s.opts.MaxPayload,
		Username:   s.opts.Username,
		Password:   s.opts.Password,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return fmt.Errorf("embedded NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("embedded NATS did not start listening on %s:%d within 20s (is the port taken?)", s.opts.Host, s.opts.Port)
	}
	s.srv = srv
	return nil
}

// URL is the client URL, such as nats://127.0.0.1:4222.
func (s *Server) URL() string {
	return "nats://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
}

// Port returns the port the server listens on.
func (s *Server) Port() int { return s.opts.Port }

// StoreDir returns the JetStream directory.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// Shutdown stops the server and waits until it is down.
func (s *Server) Shutdown() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// Restart starts the server again on the same port with the same store,
// after a Shutdown.
func (s *Server) Restart() error {
	s.Shutdown()
	var err error
	for range 50 { // the port can linger briefly after shutdown
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("embedded NATS: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
