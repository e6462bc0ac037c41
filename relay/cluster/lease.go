package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultLeaseTTL is how long a lease outlives its holder's last renewal.
const DefaultLeaseTTL = 3 * time.Second

// errLeaseLost means another ingest holds the lease now.
var errLeaseLost = errors.New("lease held by another ingest")

// leaseBucket is the lease's KV bucket. The TTL is the bucket's (MaxAge),
// not a per-key TTL: KV Update publishes without a TTL and so drops a
// per-key one (measured, NATS.md §2). LimitMarkerTTL makes the expiry
// visible to watchers as a purge marker (edges mark symbols stale on it).
func leaseBucket(n names, c Config, ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket: n.lease, Description: "wsrelay: the ingest that publishes",
		TTL: ttl, LimitMarkerTTL: ttl, History: 1,
		Storage: jetstream.FileStorage, Replicas: c.Replicas,
	}
}

// leaseValue is the lease key's value.
type leaseValue struct {
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
}

// lease is one ingest's claim on the key "ingest".
type lease struct {
	kv  jetstream.KeyValue
	val []byte
	rev uint64
}

func newLease(kv jetstream.KeyValue, holder string) *lease {
	b, _ := json.Marshal(leaseValue{Holder: holder, Since: time.Now().UTC()})
	return &lease{kv: kv, val: b}
}

// acquire takes the lease when nobody holds it; false when someone does.
func (l *lease) acquire(ctx context.Context) (bool, error) {
	rev, err := l.kv.Create(ctx, leaseKey, l.val)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lease: %w", err)
	}
	l.rev = rev
	return true, nil
}

// renew extends the lease. When its revision moved on (it expired while
// NATS was unreachable) it is taken again if nobody else took it; otherwise
// errLeaseLost. Other errors (NATS unreachable) leave the question open.
func (l *lease) renew(ctx context.Context) error {
	rev, err := l.kv.Update(ctx, leaseKey, l.val, l.rev)
	if err == nil {
		l.rev = rev
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("lease renewal: %w", err)
	}
	ok, err := l.acquire(ctx)
	switch {
	case err != nil:
		return err
	case !ok:
		return errLeaseLost
	}
	return nil
}

// release gives the lease up at once (a graceful shutdown), so a standby
// takes over without waiting for the TTL.
func (l *lease) release(ctx context.Context) error {
	return l.kv.Delete(ctx, leaseKey, jetstream.LastRevision(l.rev))
}
