package relay

// skipReporter is implemented by framings that may drop a message they
// cannot turn into records without ending the session (a Socket.IO binary
// event). After each decode, skipped returns why that decode dropped a
// message, or nil. The engine counts such a message as ignored, logs the
// reason at debug and keeps it as the symbol's last error; the session
// goes on. A framing that never drops a message need not implement it.
type skipReporter interface {
	skipped() error
}

var _ skipReporter = (*socketIOFraming)(nil)
