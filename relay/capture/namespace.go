package capture

import (
	"fmt"
	"strings"
)

// socketIONamespace picks the Socket.IO namespace the page used for its
// events (the one it emitted most in; SIO v5 "Connection to a namespace"),
// leaves the other namespaces' packets out of the inference (the relay
// drops them too), and takes the CONNECT packet's payload as
// namespace_auth: kept when it carries no credential or with
// -keep-secrets, otherwise left out with a comment.
func socketIONamespace(recs [][]record, keep bool, up *Upstream) {
	counts := map[string]int{}
	connects := map[string][]byte{}
	for si := range recs {
		for ri := range recs[si] {
			r := &recs[si][ri]
			if !r.sent || r.ns == "" {
				continue
			}
			switch {
			case r.kind == recJSON:
				counts[r.ns]++
			case strings.HasPrefix(r.control, "socket.io connect") && !strings.HasPrefix(r.control, "socket.io connect_error"):
				if _, ok := connects[r.ns]; !ok || len(r.doc) > 0 {
					connects[r.ns] = r.doc
				}
			}
		}
	}
	ns, best := "/", -1
	for n, c := range counts {
		if c > best || (c == best && n < ns) {
			ns, best = n, c
		}
	}
	if best < 0 && len(connects) == 1 {
		for n := range connects {
			ns = n
		}
	}
	if ns != "/" {
		up.Namespace = ns
		up.Notes["namespace"] = note(High, "the page emitted its events in the namespace %s", ns)
	}
	others := 0
	for si := range recs {
		for ri := range recs[si] {
			r := &recs[si][ri]
			if r.ns != "" && r.ns != ns {
				r.kind, r.control = recControl, "socket.io packet of another namespace"
				others++
			}
		}
	}
	if others > 0 {
		up.Comments["namespace"] = append(up.Comments["namespace"], fmt.Sprintf("%s of other namespaces on the same socket are left out", plural(others, "packet", "packets")))
	}
	auth := connects[ns]
	if len(strings.TrimSpace(string(auth))) == 0 {
		return
	}
	if _, secret := redactDoc(auth); secret && !keep {
		up.Comments["namespace"] = append(up.Comments["namespace"], "left out: namespace_auth, the payload the page connected with (it holds a credential); a namespace that checks it refuses the connection: then rerun with -keep-secrets")
		return
	}
	up.NamespaceAuth = string(compact(auth))
	up.Notes["namespace_auth"] = note(High, "the payload the page sent with its namespace connect")
}
