package relay

import (
	"errors"
	"strings"
)

// Optional parts of a framing, for the engine and Validate to use where a
// framing has them.

// skipReporter is implemented by framings that may drop a message they
// cannot turn into records without ending the session (a Socket.IO binary
// event). After each decode, skipped returns why that decode dropped a
// message, or nil. The engine counts such a message as ignored, logs the
// reason at debug and keeps it as the symbol's last error; the session
// goes on. A framing that never drops a message need not implement it.
type skipReporter interface {
	skipped() error
}

// templateChecker is implemented by framings whose templates (subscribe,
// unsubscribe, app_ping) have a required shape: checkTemplate says what is
// wrong with one, so that Validate can refuse it with the key's name
// rather than the venue refusing the frame later.
type templateChecker interface {
	checkTemplate(tmpl string) error
}

var (
	_ skipReporter    = (*socketIOFraming)(nil)
	_ templateChecker = (*socketIOFraming)(nil)
	_ templateChecker = (*signalRFraming)(nil)
)

// checkTemplate: a Socket.IO template is the event array, optionally after
// an ack id (SIO Format); the relay adds "42" and the namespace.
func (f *socketIOFraming) checkTemplate(tmpl string) error {
	t := strings.TrimSpace(tmpl)
	if strings.HasPrefix(t, "42[") || strings.HasPrefix(t, "42/") {
		return errors.New(`socketio templates are the event array (["name", …]): drop the leading "42", the relay adds it`)
	}
	t = strings.TrimLeft(t, "0123456789{}id") // an ack id: digits or {id}
	if !strings.HasPrefix(t, "[") {
		return errors.New(`socketio templates are the event array (["name", …]), optionally after an ack id ({id}["name", …])`)
	}
	return nil
}

// checkTemplate: a SignalR template is one hub message, a JSON object
// (Hub "JSON Encoding"); the relay adds the 0x1E.
func (f *signalRFraming) checkTemplate(tmpl string) error {
	if !strings.HasPrefix(strings.TrimSpace(tmpl), "{") {
		return errors.New(`signalr templates are hub messages ({"type":1,"target":…,"arguments":[…]})`)
	}
	return nil
}
