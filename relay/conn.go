package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// conn owns one upstream connection and the symbols on it (one, or up to
// symbols_per_connection). Its owner goroutine (run) dials through the
// upstream's gate, subscribes, reconnects with backoff, retries rejected
// symbols, marks quiet symbols stale, and hands over to a new connection
// when the venue announces a disconnect or the connection reaches max_age.
// Everything else talks to the owner: Relay.Add and Remove through a
// command queue that never blocks, session readers through events.
type conn struct {
	r   *Relay
	up  *upstream
	log *slog.Logger

	ctx     context.Context
	cancel  context.CancelCauseFunc
	stopped chan struct{} // closed when the owner stops taking events

	qmu    sync.Mutex
	queue  []connCmd
	exited bool
	wake   chan struct{} // capacity 1: the queue has commands

	// members counts the symbols placed here; guarded by Relay.mu.
	members int

	events chan sessEvent
	dialed chan dialResult
	wg     sync.WaitGroup // dial goroutines and retiring sessions

	list   atomic.Pointer[[]*symbol]          // the symbols, for readers
	routes atomic.Pointer[map[string]*symbol] // route value → symbol (shared connections)

	// Owned by the owner goroutine.
	syms            []*symbol
	cur, next       *session
	dialing         bool
	handoverDialing bool
	sessions        int
	attempt         int
	retry           map[*symbol]time.Time
	dialAlarm       alarm // next dial after backoff or a rejection
	ageAlarm        alarm // max_age of cur
	graceAlarm      alarm // a handover that takes too long
	retryAlarm      alarm // resubscribe rejected symbols (shared connections)
}

type connCmd struct {
	add, remove *symbol
	last        bool          // remove: no symbol is left
	done        chan struct{} // remove: closed once nothing more is published
}

type evKind uint8

const (
	evEnded evKind = iota + 1
	evReject
	evReconnect
	evHeld   // a handover session holds its first quote of sym
	evSynced // the old session answered the ping that syncs syms
)

type sessEvent struct {
	s    *session
	kind evKind
	err  error     // evEnded; evSynced: the ping's
	sym  *symbol   // evHeld
	syms []*symbol // evSynced
	msg  string    // evReject
	id   string    // evReject: the value at the rule's id pointer
	// route is the reject's route value.
	route string
}

func newConn(r *Relay, up *upstream) *conn {
	c := &conn{
		r: r, up: up, log: r.log.With("upstream", up.cfg.Name),
		stopped: make(chan struct{}), wake: make(chan struct{}, 1),
		events: make(chan sessEvent, 64), dialed: make(chan dialResult, 2),
		retry: map[*symbol]time.Time{},
	}
	c.ctx, c.cancel = context.WithCancelCause(r.ctx)
	empty := []*symbol{}
	c.list.Store(&empty)
	return c
}

// push queues a command for the owner; it never blocks. Called with
// Relay.mu held, so commands keep the order of Add and Remove.
func (c *conn) push(cmd connCmd) {
	c.qmu.Lock()
	if c.exited {
		c.qmu.Unlock()
		if cmd.done != nil {
			close(cmd.done)
		}
		return
	}
	c.queue = append(c.queue, cmd)
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// event hands a reader's event to the owner, unless the session or the
// owner is going away.
func (c *conn) event(s *session, ev sessEvent) {
	select {
	case c.events <- ev:
	case <-s.quit:
	case <-c.stopped:
	}
}

// eventEnd hands the owner a session's end, unless the owner no longer
// waits for it.
func (c *conn) eventEnd(ev sessEvent) {
	select {
	case c.events <- ev:
	case <-c.stopped:
	}
}

// memberList returns the symbols on the connection, for readers.
func (c *conn) memberList() []*symbol { return *c.list.Load() }

// members1 returns the connection's only symbol, or nil.
func (c *conn) members1() *symbol {
	if l := c.memberList(); len(l) == 1 {
		return l[0]
	}
	return nil
}

// route finds a quote's symbol: the only one, or by route value.
func (c *conn) route(key []byte, members []*symbol) *symbol {
	if c.up.cfg.SymbolsPerConnection <= 1 {
		if len(members) == 1 {
			return members[0]
		}
		return nil
	}
	if m := c.routes.Load(); m != nil && key != nil {
		return (*m)[string(key)]
	}
	return nil
}

// setMembers publishes c.syms to the readers.
func (c *conn) setMembers() {
	l := slices.Clone(c.syms)
	c.list.Store(&l)
	if c.up.cfg.SymbolsPerConnection > 1 {
		m := make(map[string]*symbol, len(l))
		for _, s := range l {
			m[c.up.tmpl.route.renderString(s.ref(), escRaw)] = s
		}
		c.routes.Store(&m)
	}
}

// alarm is a timer the owner selects on; a zero alarm never fires.
type alarm struct {
	t  *time.Timer
	ch <-chan time.Time
}

func (a *alarm) set(d time.Duration) {
	if a.t == nil {
		a.t = time.NewTimer(d)
	} else {
		a.t.Reset(d)
	}
	a.ch = a.t.C
}

func (a *alarm) stop() {
	if a.t != nil {
		a.t.Stop()
	}
	a.ch = nil
}

// run is the owner loop.
func (c *conn) run() {
	defer c.shutdown()
	cfg := &c.up.cfg
	staleTick := time.NewTicker(min(max(cfg.StaleAfter/10, 10*time.Millisecond), time.Second))
	defer staleTick.Stop()
	for {
		if c.cur == nil && !c.dialing && !c.handoverDialing && c.dialAlarm.ch == nil && len(c.syms) > 0 {
			c.startDial(nil, false)
		}
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
			if c.applyCommands() {
				return
			}
		case d := <-c.dialed:
			c.onDialed(d)
		case ev := <-c.events:
			c.onEvent(ev)
		case <-c.dialAlarm.ch:
			c.dialAlarm.ch = nil
		case now := <-staleTick.C:
			c.checkStale(now)
		case <-c.ageAlarm.ch:
			c.ageAlarm.ch = nil
			c.startHandover(fmt.Sprintf("connection reached max_age %s", cfg.MaxAge))
		case <-c.graceAlarm.ch:
			c.graceAlarm.ch = nil
			c.completeHandover(true)
		case now := <-c.retryAlarm.ch:
			c.retryAlarm.ch = nil
			c.retryRejected(now)
		}
	}
}

// startDial dials a session in a goroutine; the result comes back on
// c.dialed. A handover dial replaces prev.
func (c *conn) startDial(prev *session, handover bool) {
	if handover {
		c.handoverDialing = true
	} else {
		c.dialing = true
		for _, s := range c.syms {
			if s.stateNow() != StateRejected {
				s.setState(StateConnecting, "dialling")
			}
		}
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		d := c.dial(c.ctx, prev, handover)
		select {
		case c.dialed <- d:
		case <-c.stopped:
			if d.s != nil {
				d.s.closeNow()
				<-d.s.done
				d.s.release()
			}
		}
	}()
}

func (c *conn) onDialed(d dialResult) {
	if d.handover {
		c.handoverDialing = false
	} else {
		c.dialing = false
	}
	if d.err != nil {
		if c.ctx.Err() != nil {
			return
		}
		if d.handover && c.cur != nil {
			c.log.Warn("handover connection failed; the current one stays until it ends", "err", d.err)
			return
		}
		c.afterFailure(d.err, time.Time{})
		return
	}
	s := d.s
	c.sessions++
	if c.sessions > 1 {
		for _, m := range c.syms {
			m.reconns.Add(1)
		}
	}
	if d.gateWait > time.Second {
		c.log.Debug("waited at the connection budget", "wait", d.gateWait.Round(time.Millisecond), "dial_rate", c.up.cfg.DialRate.String())
	}
	c.subscribeAll(s)
	if d.handover && c.cur != nil {
		c.next = s
		c.graceAlarm.set(max(c.up.cfg.StaleAfter, 5*time.Second))
		c.log.Info("handover: new connection subscribed; switching symbols as it delivers")
		c.syncHandover(s) // quotes held before it was adopted (symbol in the URL)
		c.maybeCompleteHandover()
		return
	}
	c.cur = s
	for _, m := range c.syms {
		m.connected.Store(true)
		if d.handover { // the old connection ended while this one was dialled
			c.switchSymbol(m, s, true)
		}
	}
	if age := c.up.cfg.MaxAge; age > 0 {
		c.ageAlarm.set(age)
	}
	c.log.Debug("connected", "url", RedactURL(s.url))
}

// subscribeAll queues the connection's frames, then every symbol's.
func (c *conn) subscribeAll(s *session) {
	for _, t := range c.up.tmpl.subscribe {
		if !t.perSymbol() {
			s.enqueue(c.render(s, t, nil, false))
		}
	}
	for _, m := range c.syms {
		c.subscribe(s, m)
	}
}

// subscribe queues one symbol's subscribe frames on s.
func (c *conn) subscribe(s *session, m *symbol) {
	for _, t := range c.up.tmpl.subscribe {
		if t.perSymbol() {
			s.enqueue(c.render(s, t, m, true))
		}
	}
	s.subscribedAt[m] = time.Now()
	m.log.Debug("subscribed")
}

// unsubscribeFrames renders m's unsubscribe frames for s.
func (c *conn) unsubscribeFrames(s *session, m *symbol) [][]byte {
	var out [][]byte
	for _, t := range c.up.tmpl.unsubscribe {
		out = append(out, c.render(s, t, m, false))
	}
	return out
}

// render renders a frame of m (nil: of the connection) for s. The {id} of
// m's subscribe frame is remembered as m's, so that a reject answering it
// finds its symbol; every other frame's {id} as nobody's, so that a reject
// answering it (Deribit answers an unsubscribe of nothing with
// "result":[]) disturbs no symbol.
func (c *conn) render(s *session, t template, m *symbol, subscribe bool) []byte {
	a := tmplArgs{nextID: s.nextID}
	if m != nil {
		a.ref = m.ref()
	}
	out := t.render(nil, &a, escJSON)
	if a.id != 0 {
		s.idSyms[a.id] = nil
		if subscribe {
			s.idSyms[a.id] = m
		}
	}
	return out
}

func (c *conn) onEvent(ev sessEvent) {
	switch ev.kind {
	case evEnded:
		c.onEnded(ev.s, ev.err)
	case evReconnect:
		if ev.s == c.cur {
			c.cur.announced = true
			c.startHandover("the venue announced a disconnect")
		}
	case evHeld:
		if ev.s == c.next {
			c.syncHandover(ev.s)
		}
	case evSynced:
		c.onSynced(ev)
	case evReject:
		if ev.s == c.cur || ev.s == c.next {
			c.onReject(ev)
		}
	}
}

func (c *conn) onEnded(s *session, err error) {
	c.retire(s, 0, "", nil)
	switch s {
	case c.next:
		c.next = nil
		c.graceAlarm.stop()
		c.log.Warn("handover connection ended before taking over", "err", err)
		return
	case c.cur:
	default:
		return // replaced or retired already
	}
	c.cur = nil
	c.ageAlarm.stop()
	for _, m := range c.syms {
		m.drops.Add(1)
	}
	if c.next != nil { // the venue closed the old connection: the new one goes on
		c.cur, c.next = c.next, nil
		c.graceAlarm.stop()
		c.completeSwitch()
		return
	}
	for _, m := range c.syms {
		m.connected.Store(false)
	}
	if c.handoverDialing {
		return // the handover's connection becomes the current one
	}
	if s.announced {
		c.log.Info("announced disconnect: reconnecting at once", "err", err)
		c.attempt = 0
		return // the loop dials now, through the gate
	}
	c.afterFailure(err, s.since)
}

// afterFailure schedules the next dial after a failed or lost connection.
func (c *conn) afterFailure(err error, connectedAt time.Time) {
	cfg := &c.up.cfg
	if !connectedAt.IsZero() && time.Since(connectedAt) >= StableAfter {
		c.attempt = 0
	}
	delay := backoffDelay(cfg.Backoff.Min, cfg.Backoff.Max, c.attempt, rand.Int64N)
	c.attempt++
	level := slog.LevelInfo
	if code := websocket.CloseStatus(err); code == websocket.StatusUnsupportedData || code == websocket.StatusPolicyViolation {
		level = slog.LevelWarn
		err = fmt.Errorf("upstream refused the subscription: %w", err)
	}
	c.log.Log(c.ctx, level, "upstream connection ended; reconnecting", "err", err, "backoff", delay, "attempt", c.attempt)
	for _, m := range c.syms {
		m.setErr(err.Error())
		if m.stateNow() != StateRejected {
			m.setState(StateBackoff, err.Error())
		}
	}
	c.dialAlarm.set(delay)
}

// startHandover opens a new connection beside the current one.
func (c *conn) startHandover(reason string) {
	if c.cur == nil || c.next != nil || c.handoverDialing {
		return
	}
	c.log.Info("handing over to a new connection", "reason", reason)
	c.startDial(c.cur, true)
}

// syncHandover pings the connection next replaces, once at a time: the
// venue answers after every message it had sent on it, so when the pong
// is read the old reader has published every quote it was sent before the
// ping, and the symbols whose quotes next holds can switch without a
// gap. A ping that fails (the old connection ended, or the venue does
// not answer within ping_timeout) switches them as well.
func (c *conn) syncHandover(next *session) {
	if next.syncing || next.prev == nil {
		return
	}
	var syms []*symbol
	for _, m := range c.syms {
		if m.pendingOn(next) {
			syms = append(syms, m)
		}
	}
	if len(syms) == 0 {
		return
	}
	next.syncing = true
	old, timeout := next.prev, c.up.cfg.PingTimeout
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, timeout)
		err := old.ws.Ping(ctx)
		cancel()
		c.event(next, sessEvent{s: next, kind: evSynced, err: err, syms: syms})
	}()
}

func (c *conn) onSynced(ev sessEvent) {
	next := ev.s
	next.syncing = false
	if next != c.next {
		return // ended, or made current by the old one's end (which switched all)
	}
	if ev.err != nil {
		c.log.Debug("handover: the old connection answered no ping; switching anyway", "err", ev.err)
	}
	for _, m := range ev.syms {
		c.switchSymbol(m, next, false)
	}
	c.syncHandover(next) // symbols that began holding meanwhile
	c.maybeCompleteHandover()
}

// switchSymbol moves m to s (see symbol.finishSwitch); a quote that
// cannot be published is logged, the symbol moves anyway.
func (c *conn) switchSymbol(m *symbol, s *session, forced bool) {
	if err := m.finishSwitch(s, forced); err != nil {
		m.setErr("handover: " + err.Error())
	}
}

// maybeCompleteHandover retires the old connection once every symbol
// delivers on the new one.
func (c *conn) maybeCompleteHandover() {
	if c.next == nil {
		return
	}
	for _, m := range c.syms {
		if m.active.Load() != c.next && m.stateNow() != StateRejected {
			return
		}
	}
	c.completeHandover(false)
}

// completeHandover makes next the current connection and closes the old
// one; forced moves the symbols that have not delivered yet (quiet ones).
func (c *conn) completeHandover(forced bool) {
	if c.next == nil {
		return
	}
	old := c.cur
	c.cur, c.next = c.next, nil
	c.graceAlarm.stop()
	if forced {
		c.log.Info("handover: quiet symbols moved to the new connection")
	}
	c.completeSwitch()
	if old != nil {
		c.retireLater(old, c.up.handoverLinger(), websocket.StatusNormalClosure, "handover")
	}
}

// completeSwitch points every symbol at the current connection.
func (c *conn) completeSwitch() {
	for _, m := range c.syms {
		c.switchSymbol(m, c.cur, true)
		m.connected.Store(true)
	}
	if age := c.up.cfg.MaxAge; age > 0 {
		c.ageAlarm.set(age)
	}
	c.log.Info("handover complete")
}

// onReject marks the refused symbols rejected and schedules their retry
// at the backoff's maximum delay: a connection of its own is closed and
// redialled then; on a shared connection only the symbol is subscribed
// again, the others are not disturbed.
func (c *conn) onReject(ev sessEvent) {
	var targets []*symbol
	if ev.id != "" {
		if id, err := strconv.ParseUint(trimQuotes(ev.id), 10, 64); err == nil {
			m, known := ev.s.idSyms[id]
			if known && m == nil {
				c.log.Debug("a reject answers no subscription", "id", id, "reason", ev.msg)
				return
			}
			if m != nil && slices.Contains(c.syms, m) {
				targets = append(targets, m)
			}
		}
	}
	if targets == nil && ev.route != "" {
		if m := c.route([]byte(ev.route), c.syms); m != nil {
			targets = append(targets, m)
		}
	}
	if targets == nil {
		if len(c.syms) == 1 {
			targets = c.syms
		} else {
			for _, m := range c.syms { // not yet delivering here: the ones it may mean
				if m.active.Load() != ev.s && !m.pendingOn(ev.s) {
					targets = append(targets, m)
				}
			}
		}
	}
	wait := c.up.cfg.Backoff.Max
	for _, m := range targets {
		m.setErr("rejected by the venue: " + ev.msg)
		m.setState(StateRejected, ev.msg)
		m.log.Warn("the venue refused the subscription", "reason", ev.msg, "retry_in", wait)
	}
	if len(targets) == 0 {
		return
	}
	if c.up.cfg.SymbolsPerConnection <= 1 {
		s := ev.s
		if s == c.cur {
			c.cur = nil
			c.ageAlarm.stop()
			for _, m := range c.syms {
				m.connected.Store(false)
			}
		} else {
			c.next = nil
		}
		c.retire(s, websocket.StatusNormalClosure, "subscription rejected", nil)
		c.dialAlarm.set(wait)
		return
	}
	due := time.Now().Add(wait)
	for _, m := range targets {
		c.retry[m] = due
	}
	c.retryAlarm.set(wait)
}

// retryRejected subscribes rejected symbols of a shared connection again.
func (c *conn) retryRejected(now time.Time) {
	var next time.Time
	for m, due := range c.retry {
		if !slices.Contains(c.syms, m) {
			delete(c.retry, m)
			continue
		}
		if due.After(now) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		delete(c.retry, m)
		if c.cur != nil {
			c.subscribe(c.cur, m)
		}
	}
	if !next.IsZero() {
		c.retryAlarm.set(next.Sub(now))
	}
}

// checkStale marks symbols that had no quote for stale_after.
func (c *conn) checkStale(now time.Time) {
	if c.cur == nil {
		return
	}
	cfg := &c.up.cfg
	stale := 0
	var reason string
	for _, m := range c.syms {
		last, ok := c.cur.subscribedAt[m]
		if !ok || m.stateNow() == StateRejected {
			continue
		}
		if ns := m.lastQuote.Load(); ns > last.UnixNano() {
			last = time.Unix(0, ns)
		}
		quiet := now.Sub(last)
		if quiet < cfg.StaleAfter {
			continue
		}
		stale++
		if m.stateNow() != StateStale {
			reason = fmt.Sprintf("no quote for %s", quiet.Truncate(time.Millisecond))
			m.setState(StateStale, reason)
		}
	}
	if cfg.ReconnectOnStale && reason != "" && stale == len(c.syms) {
		c.cur.fail(errors.New(reason))
	}
}

// applyCommands runs the queued commands; it reports true when the last
// symbol was removed and the owner is to end.
func (c *conn) applyCommands() bool {
	c.qmu.Lock()
	cmds := c.queue
	c.queue = nil
	c.qmu.Unlock()
	for i, cmd := range cmds {
		if cmd.add != nil {
			c.addSymbol(cmd.add)
			continue
		}
		if c.removeSymbol(cmd) {
			for _, rest := range cmds[i+1:] { // none: the relay forgot this connection
				if rest.done != nil {
					close(rest.done)
				}
			}
			return true
		}
	}
	return false
}

func (c *conn) addSymbol(m *symbol) {
	c.syms = append(c.syms, m)
	c.setMembers()
	for _, s := range []*session{c.cur, c.next} {
		if s != nil {
			c.subscribe(s, m)
		}
	}
	m.connected.Store(c.cur != nil)
}

// removeSymbol unsubscribes a symbol; the last one closes the connection
// with 1000 after its unsubscribe frames.
func (c *conn) removeSymbol(cmd connCmd) bool {
	m := cmd.remove
	m.removed.Store(true)
	c.syms = slices.DeleteFunc(c.syms, func(x *symbol) bool { return x == m })
	delete(c.retry, m)
	c.setMembers()
	defer close(cmd.done)
	if cmd.last {
		var wg sync.WaitGroup
		for _, s := range []*session{c.cur, c.next} {
			if s == nil {
				continue
			}
			frames := c.unsubscribeFrames(s, m)
			s.retired = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.closeSession(s, websocket.StatusNormalClosure, "unsubscribed", frames)
			}()
		}
		wg.Wait()
		c.cur, c.next = nil, nil
		return true
	}
	for _, s := range []*session{c.cur, c.next} {
		if s == nil {
			continue
		}
		for _, f := range c.unsubscribeFrames(s, m) {
			s.enqueue(f)
		}
	}
	return false
}

// retire stops waiting for s and closes it in the background (with a
// close handshake when code is set), then frees its connection slot.
func (c *conn) retire(s *session, code websocket.StatusCode, reason string, frames [][]byte) {
	if s.retired {
		return
	}
	s.retired = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.closeSession(s, code, reason, frames)
	}()
}

// retireLater closes s once the handover's linger has passed (its
// symbols still hear it meanwhile: see symbol.offer), or at once when the
// connection shuts down; a session that ends by itself is released then.
func (c *conn) retireLater(s *session, linger time.Duration, code websocket.StatusCode, reason string) {
	if s.retired {
		return
	}
	s.retired = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTimer(linger)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.done:
		case <-c.stopped:
		}
		c.closeSession(s, code, reason, nil)
	}()
}

// closeSession closes s and waits for it. A session can be closed more
// than once (a reject, then its end); only the first frees its slot.
func (c *conn) closeSession(s *session, code websocket.StatusCode, reason string, frames [][]byte) {
	if code == 0 || s.ended.Load() {
		s.closeNow()
		<-s.done
	} else {
		s.close(code, reason, frames)
	}
	s.release()
}

// shutdown ends the owner: every session is closed (1001 on shutdown),
// every goroutine waited for, and commands that come later are answered.
func (c *conn) shutdown() {
	c.qmu.Lock()
	c.exited = true
	rest := c.queue
	c.queue = nil
	c.qmu.Unlock()
	for _, cmd := range rest {
		if cmd.remove != nil {
			cmd.remove.removed.Store(true)
		}
		if cmd.done != nil {
			close(cmd.done)
		}
	}
	close(c.stopped)
	code, reason := websocket.StatusGoingAway, "relay shutting down"
	for _, s := range []*session{c.cur, c.next} {
		if s != nil {
			c.retire(s, code, reason, nil)
		}
	}
	c.cancel(errRemoved) // dials in flight end; no-op after shutdown's own cause
	c.wg.Wait()
	for _, t := range []*alarm{&c.dialAlarm, &c.ageAlarm, &c.graceAlarm, &c.retryAlarm} {
		t.stop()
	}
	for _, m := range c.syms {
		m.connected.Store(false)
	}
}

// backoffDelay returns the delay before reconnect attempt n (0-based):
// drawn uniformly (full jitter) from [min, min(max, min·2ⁿ)]. rnd(k) must
// return a value in [0, k).
func backoffDelay(min, max time.Duration, n int, rnd func(int64) int64) time.Duration {
	if min <= 0 {
		min = time.Millisecond
	}
	if max < min {
		max = min
	}
	ceil := max
	if n < 62 && min<<n > 0 && min<<n < max {
		ceil = min << n
	}
	if ceil <= min {
		return min
	}
	return min + time.Duration(rnd(int64(ceil-min)+1))
}

func trimQuotes(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
