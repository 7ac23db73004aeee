package crashtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// harness is the shared state of one crash test: the log every child and
// every harness action writes to, the problems seen, NATS outages, and the
// counters the test reports.
type harness struct {
	start time.Time
	rt    dispatcherRuntime
	env   *env

	logMu   sync.Mutex
	logFile *os.File // children.log in the work directory
	actions []string // the harness's own actions, for the test log

	probMu   sync.Mutex
	problems []string
	failed   chan struct{} // closed at the first problem

	outMu      sync.Mutex
	outages    []outage // NATS outages, in order
	lastStatus string   // the newest status line of a dispatcher

	appended    atomic.Uint64      // events appended so far
	bursts      chan chan struct{} // burst requests to the appender
	appendDone  chan struct{}      // closed when the appender returns
	readies     atomic.Int64       // processes that said they deliver
	killsBehind atomic.Int64       // kills after which the stream held fewer events than the log

	// Sessions that found the stream ahead of their checkpoint, and by how
	// many events in all: what the reconciliation kept from being sent again.
	aheadSessions atomic.Int64
	aheadEvents   atomic.Uint64
}

// outage is one NATS outage; up is zero while it lasts.
type outage struct{ down, up time.Time }

func newHarness(rt dispatcherRuntime, e *env, logFile *os.File) *harness {
	return &harness{start: time.Now(), rt: rt, env: e, logFile: logFile, failed: make(chan struct{}),
		bursts: make(chan chan struct{}), appendDone: make(chan struct{})}
}

// since is the time since the test began, for log lines.
func (h *harness) since() string {
	return fmt.Sprintf("+%7.3fs", time.Since(h.start).Seconds())
}

// logLine writes one line to children.log.
func (h *harness) logLine(label, line string) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.logFile, "%s [%s] %s\n", h.since(), label, line)
}

// action records an action of the harness, in children.log (among the
// children's output) and in the list the test prints.
func (h *harness) action(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.logLine("harness", msg)
	h.logMu.Lock()
	h.actions = append(h.actions, h.since()+" "+msg)
	h.logMu.Unlock()
}

func (h *harness) actionList() []string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return append([]string(nil), h.actions...)
}

// problem records something that fails the test, such as a panic in a
// child, and makes the waits of the test return at once.
func (h *harness) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.logLine("harness", "PROBLEM: "+msg)
	h.probMu.Lock()
	defer h.probMu.Unlock()
	if len(h.problems) == 0 {
		close(h.failed)
	}
	if len(h.problems) < 20 {
		h.problems = append(h.problems, msg)
	}
}

func (h *harness) problemList() []string {
	h.probMu.Lock()
	defer h.probMu.Unlock()
	return append([]string(nil), h.problems...)
}

func (h *harness) natsDown() {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	h.outages = append(h.outages, outage{down: time.Now()})
}

func (h *harness) natsUp() {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	h.outages[len(h.outages)-1].up = time.Now()
}

// outageDuring reports whether NATS was down at some time between from and
// to, or within a second before from (a process that starts as NATS comes
// back may still meet the old refusal).
func (h *harness) outageDuring(from, to time.Time) bool {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	for _, o := range h.outages {
		if !o.down.After(to) && (o.up.IsZero() || o.up.Add(time.Second).After(from)) {
			return true
		}
	}
	return false
}

func (h *harness) outageList() []outage {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	return append([]outage(nil), h.outages...)
}

func (h *harness) setStatus(line string) {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	h.lastStatus = line
}

func (h *harness) status() string {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	return h.lastStatus
}

// aheadLine is the dispatcher's log line for a session that resumes after
// the stream's newest message rather than after its checkpoint.
var aheadLine = regexp.MustCompile(`target is ahead of the checkpoint.* target_last_seq=(\d+) position=(\d+)`)

// fatalMarkers are output that fails the test at once.
var fatalMarkers = []string{"panic:", "fatal error:", "DATA RACE", "HALTED", "delivery halted"}

// lineSink is a child's stdout or stderr: it copies complete lines to
// children.log, keeps them (all, or the last keep), and watches them for
// fatal markers.
type lineSink struct {
	h      *harness
	p      *proc
	label  string
	keep   int // lines kept; 0: all
	stdout bool

	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (s *lineSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial = append(s.partial, b...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		s.line(string(s.partial[:i]))
		s.partial = s.partial[i+1:]
	}
}

// flush handles a last line without a newline; the process has exited.
func (s *lineSink) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.partial) > 0 {
		s.line(string(s.partial))
		s.partial = nil
	}
}

func (s *lineSink) line(l string) {
	s.h.logLine(s.label, l)
	s.lines = append(s.lines, l)
	if s.keep > 0 && len(s.lines) > s.keep {
		s.lines = s.lines[len(s.lines)-s.keep:]
	}
	for _, m := range fatalMarkers {
		if strings.Contains(l, m) {
			s.h.problem("%s printed %q: %s", s.p, m, l)
		}
	}
	if m := aheadLine.FindStringSubmatch(l); m != nil {
		target, _ := strconv.ParseUint(m[1], 10, 64)
		pos, _ := strconv.ParseUint(m[2], 10, 64)
		if target > pos {
			s.h.aheadSessions.Add(1)
			s.h.aheadEvents.Add(target - pos)
			s.h.action("%s: the stream is %d events ahead of its position: resumes after event %d, not %d",
				s.p, target-pos, target, pos)
		}
	}
	if s.stdout {
		if strings.HasPrefix(l, "status: ") {
			s.h.setStatus(fmt.Sprintf("%s %s", s.p, l))
		}
		if s.h.rt.ready(l) {
			s.h.readies.Add(1)
			s.h.action("%s: %s", s.p, l)
			s.p.readyOnce.Do(func() {
				s.p.readyAt.Store(time.Now().UnixNano())
				close(s.p.ready)
			})
		}
		if s.h.rt.caughtUp(l, s.h.env.events) {
			s.p.upOnce.Do(func() { close(s.p.caughtUp) })
		}
	}
}

func (s *lineSink) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// proc is one dispatcher process. Its exit fields may be read once done is
// closed.
type proc struct {
	n       int // 1 for the first process, 2 for the next...
	cmd     *exec.Cmd
	started time.Time
	stdout  *lineSink
	stderr  *lineSink

	ready     chan struct{} // closed when the process says it delivers
	readyOnce sync.Once
	readyAt   atomic.Int64  // when, in Unix nanoseconds
	caughtUp  chan struct{} // closed when it says it has delivered every event
	upOnce    sync.Once

	done   chan struct{}
	exited time.Time
	code   int // exit code; -1 when ended by a signal
	state  string
	signal syscall.Signal // the signal that ended it, if one did
}

// endedBy reports whether the process was ended by sig.
func (p *proc) endedBy(sig syscall.Signal) bool { return p.code == -1 && p.signal == sig }

func (p *proc) String() string {
	if p.cmd != nil && p.cmd.Process != nil {
		return fmt.Sprintf("dispatcher #%d (pid %d)", p.n, p.cmd.Process.Pid)
	}
	return fmt.Sprintf("dispatcher #%d", p.n)
}

// delivering describes how long the process had been delivering when it
// exited, or that it never said it was.
func (p *proc) delivering() string {
	at := p.readyAt.Load()
	if at == 0 {
		return "before it said it was delivering"
	}
	return fmt.Sprintf("%s after it said it was delivering", p.exited.Sub(time.Unix(0, at)).Round(time.Millisecond))
}

// lastWords is the end of the process's stderr, for exit reports.
func (p *proc) lastWords(n int) string {
	lines := p.stderr.snapshot()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// supervisor starts dispatcher processes one at a time, kills them when
// asked, and starts one again after a kill or an exit. One goroutine, the
// loop, owns the processes: it is locked to its OS thread, and children
// are started with a parent-death signal (where the OS has one), so that
// they die with it even if the test binary is killed.
type supervisor struct {
	h        *harness
	kills    chan killRequest
	stops    chan stopRequest
	currents chan chan *proc // requests for the running process
	quit     chan struct{}   // closed by close
	done     chan struct{}   // closed when the loop returns

	started   atomic.Int64 // processes started
	killed    atomic.Int64 // processes killed with SIGKILL
	downExits atomic.Int64 // processes that exited on their own while NATS was down
}

type killRequest struct {
	whenReady    bool          // wait until the process says it delivers
	jitter       time.Duration // then wait this long
	restartDelay time.Duration // start the next process this long after the kill
	reply        chan *proc    // the killed process, after it exited
}

type stopRequest struct {
	timeout time.Duration
	reply   chan *proc // the stopped process, after it exited
}

// unplannedRestartDelay is how long the supervisor waits before starting a
// dispatcher again after it exited on its own (for instance because NATS
// was down at its start).
const unplannedRestartDelay = 250 * time.Millisecond

func startSupervisor(h *harness) *supervisor {
	s := &supervisor{h: h, kills: make(chan killRequest), stops: make(chan stopRequest),
		currents: make(chan chan *proc), quit: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *supervisor) loop() {
	runtime.LockOSThread() // never unlocked: the thread ends with the loop, and a parent-death signal kills any child left
	defer close(s.done)
	var p *proc
	var restartAt time.Time
	var pending *killRequest // a kill whose process had exited on its own: it applies to the next one
	for {
		if p == nil {
			if d := time.Until(restartAt); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-s.quit:
					t.Stop()
					return
				}
			}
			var err error
			if p, err = s.startProc(); err != nil {
				s.h.problem("start dispatcher #%d: %v", s.started.Load()+1, err)
				return
			}
			continue
		}
		var req killRequest
		if pending != nil {
			req, pending = *pending, nil
		} else {
			select {
			case req = <-s.kills:
			case reply := <-s.currents:
				reply <- p
				continue
			case <-p.done:
				s.exitedOnItsOwn(p)
				p, restartAt = nil, time.Now().Add(unplannedRestartDelay)
				continue
			case r := <-s.stops:
				s.stopProc(p, r)
				return
			case <-s.quit:
				s.killNow(p)
				return
			}
		}
		switch s.killMoment(p, req) {
		case exitedFirst:
			s.exitedOnItsOwn(p)
			pending = &req
			p, restartAt = nil, time.Now().Add(unplannedRestartDelay)
			continue
		case quitFirst:
			s.killNow(p)
			return
		}
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.h.problem("SIGKILL %s: %v", p, err)
		}
		<-p.done
		if !p.endedBy(syscall.SIGKILL) { // it had exited on its own: kill the next one
			s.exitedOnItsOwn(p)
			pending = &req
			p, restartAt = nil, time.Now().Add(unplannedRestartDelay)
			continue
		}
		s.killed.Add(1)
		req.reply <- p
		p, restartAt = nil, time.Now().Add(req.restartDelay)
	}
}

// killNow kills p at once and waits for its exit.
func (s *supervisor) killNow(p *proc) {
	p.cmd.Process.Kill()
	<-p.done
}

type moment int

const (
	killTime moment = iota
	exitedFirst
	quitFirst
)

// killMoment waits, as req asks, for p to be ready and then for the jitter.
func (s *supervisor) killMoment(p *proc, req killRequest) moment {
	if req.whenReady {
		select {
		case <-p.ready:
		case <-p.done:
			return exitedFirst
		case <-s.quit:
			return quitFirst
		}
	}
	if req.jitter > 0 {
		t := time.NewTimer(req.jitter)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.done:
			return exitedFirst
		case <-s.quit:
			return quitFirst
		}
	}
	return killTime
}

// stopProc stops p with SIGINT, or kills it after the request's timeout.
// It first waits until p says it has delivered every event: a process
// that has just been started may not handle SIGINT yet, nor know what the
// stream holds.
func (s *supervisor) stopProc(p *proc, req stopRequest) {
	t := time.NewTimer(req.timeout)
	defer t.Stop()
	select {
	case <-p.caughtUp:
	case <-p.done:
		s.h.problem("%s exited before it could be stopped: %s; stderr: %s", p, p.state, p.lastWords(3))
		req.reply <- p
		return
	case <-t.C:
		s.h.problem("%s did not say it had delivered all %d events within %s (last status: %s); killing it",
			p, s.h.env.events, req.timeout, s.h.status())
		s.killNow(p)
		req.reply <- p
		return
	}
	s.h.action("SIGINT %s", p)
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		s.h.problem("SIGINT %s: %v", p, err)
	}
	select {
	case <-p.done:
	case <-t.C:
		s.h.problem("%s did not stop within %s of SIGINT; killing it", p, req.timeout)
		s.killNow(p)
	}
	req.reply <- p
}

// exitedOnItsOwn records a process that exited without being killed. While
// NATS is down a starting dispatcher exits (it cannot reach NATS): that is
// expected. Otherwise it is a problem.
func (s *supervisor) exitedOnItsOwn(p *proc) {
	msg := fmt.Sprintf("%s exited on its own after %s: %s; stderr: %s",
		p, p.exited.Sub(p.started).Round(time.Millisecond), p.state, p.lastWords(3))
	if s.h.outageDuring(p.started, p.exited) {
		s.downExits.Add(1)
		s.h.action("%s (NATS was down: restarting it)", msg)
		return
	}
	s.h.problem("%s, while NATS was up", msg)
}

func (s *supervisor) startProc() (*proc, error) {
	n := int(s.started.Add(1))
	p := &proc{n: n, done: make(chan struct{}), ready: make(chan struct{}), caughtUp: make(chan struct{})}
	p.stdout = &lineSink{h: s.h, p: p, label: fmt.Sprintf("#%d out", n), stdout: true}
	p.stderr = &lineSink{h: s.h, p: p, label: fmt.Sprintf("#%d err", n), keep: 50}
	p.cmd = exec.Command(s.h.env.bin, s.h.rt.args(s.h.env, n)...)
	p.cmd.Dir = s.h.env.dir
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.SysProcAttr = childAttr()
	p.cmd.WaitDelay = 5 * time.Second // output pipes are closed this long after exit at the latest
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	p.started = time.Now()
	s.h.logLine("harness", fmt.Sprintf("started %s: %s %s", p, s.h.env.bin, strings.Join(p.cmd.Args[1:], " ")))
	go func() {
		err := p.cmd.Wait()
		p.stdout.flush()
		p.stderr.flush()
		p.exited = time.Now()
		p.code = p.cmd.ProcessState.ExitCode()
		p.state = p.cmd.ProcessState.String()
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.signal = ws.Signal()
		}
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			p.state += " (" + err.Error() + ")"
		}
		close(p.done)
	}()
	return p, nil
}

// kill kills the running dispatcher with SIGKILL (waiting for one to run,
// if it is between processes, then as req says), and starts the next after
// req.restartDelay. It returns the killed process, once it has exited.
func (s *supervisor) kill(req killRequest, cancel <-chan struct{}) (*proc, error) {
	req.reply = make(chan *proc, 1)
	select {
	case s.kills <- req:
		return <-req.reply, nil
	case <-s.done:
		return nil, errors.New("the supervisor has ended")
	case <-cancel:
		return nil, errors.New("cancelled")
	}
}

// awaitDelivering waits until the running dispatcher says it delivers (a
// process that exits first does not count) and returns it.
func (s *supervisor) awaitDelivering(cancel <-chan struct{}) (*proc, error) {
	for {
		reply := make(chan *proc, 1)
		select {
		case s.currents <- reply:
		case <-s.done:
			return nil, errors.New("the supervisor has ended")
		case <-cancel:
			return nil, errors.New("cancelled")
		}
		p := <-reply
		select {
		case <-p.ready:
			return p, nil
		case <-p.done:
		case <-cancel:
			return nil, errors.New("cancelled")
		}
	}
}

// stop stops the running dispatcher with SIGINT once it says it has
// delivered every event, waiting up to timeout in all (then killing it),
// and ends the supervisor.
// It returns the stopped process.
func (s *supervisor) stop(timeout time.Duration) (*proc, error) {
	req := stopRequest{timeout: timeout, reply: make(chan *proc, 1)}
	select {
	case s.stops <- req:
		return <-req.reply, nil
	case <-s.done:
		return nil, errors.New("the supervisor has ended")
	case <-time.After(timeout):
		return nil, fmt.Errorf("no dispatcher process ran within %s to be stopped", timeout)
	}
}

// close kills the running dispatcher, if any, and waits for the loop to end.
func (s *supervisor) close() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}
