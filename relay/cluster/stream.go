package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// dedupWindow is the stream's duplicate window: long enough for any retry
// of a publish, short enough to keep the server's id map small (research:
// 2 min at 10k msg/s is 1.2M ids).
const dedupWindow = 30 * time.Second

// streamConfig is the quote stream as an ingest creates it. No MaxAge: it
// would expire the last quote of a quiet symbol. AllowDirect stays off:
// the ingest's reconciliation read must see its own writes (Direct Get
// may answer from a lagging replica, ADR-31).
func (n names) streamConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              n.stream,
		Description:       "wsrelay quotes: one subject per symbol",
		Subjects:          []string{n.filter},
		Storage:           c.storage(),
		Replicas:          c.Replicas,
		MaxMsgsPerSubject: int64(c.History),
		Discard:           jetstream.DiscardOld,
		Duplicates:        dedupWindow,
	}
}

// conflict says how an existing stream differs from what this deployment
// needs, in words an operator can act on (a *conflictError); nil when it
// fits.
func (n names) conflict(c Config, got jetstream.StreamConfig) error {
	if err := n.mismatch(c, got); err != nil {
		return &conflictError{err}
	}
	return nil
}

func (n names) mismatch(c Config, got jetstream.StreamConfig) error {
	if !slices.Contains(got.Subjects, n.filter) {
		return fmt.Errorf("stream %s captures subjects %v, not %s: it belongs to something else (set nats.stream to another name)", n.stream, got.Subjects, n.filter)
	}
	if got.MaxMsgsPerSubject != int64(c.History) {
		return fmt.Errorf("stream %s keeps %d quotes per symbol but history is %d: set history: %d everywhere, or delete the stream", n.stream, got.MaxMsgsPerSubject, c.History, got.MaxMsgsPerSubject)
	}
	if got.Storage != c.storage() {
		return fmt.Errorf("stream %s uses %s storage but nats.storage is %s", n.stream, got.Storage, c.storage())
	}
	return nil
}

// ensureStream opens the quote stream, creating it when absent (ingests
// do; edges only open it), and checks that it fits the config.
func ensureStream(ctx context.Context, js jetstream.JetStream, n names, c Config, create bool) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, n.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if !create {
			return nil, fmt.Errorf("stream %s not found: no ingest has created it yet", n.stream)
		}
		s, err = js.CreateStream(ctx, n.streamConfig(c))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, n.stream) // another ingest was first
		}
	}
	if err != nil {
		return nil, describe(fmt.Sprintf("stream %s", n.stream), err)
	}
	info := s.CachedInfo()
	if err := n.conflict(c, info.Config); err != nil {
		return nil, err
	}
	if create && info.Config.Replicas != c.Replicas {
		cfg := info.Config
		cfg.Replicas = c.Replicas
		if s, err = js.UpdateStream(ctx, cfg); err != nil {
			return nil, describe(fmt.Sprintf("stream %s: replicas %d", n.stream, c.Replicas), err)
		}
	}
	return s, nil
}

// epochOf is the stream's identity: its creation time in Unix ms, unless a
// process that detected data loss wrote a later one into its metadata.
func epochOf(info *jetstream.StreamInfo) int64 {
	if v, ok := info.Config.Metadata[metaEpoch]; ok {
		if e, err := strconv.ParseInt(v, 10, 64); err == nil && e > 0 {
			return e
		}
	}
	return info.Created.UnixMilli()
}

// bumpEpoch gives the stream a new epoch after data loss was detected under
// old (LastSeq went below a position already seen: IDs would otherwise be
// reused for other quotes). When someone else already changed it, that
// epoch is returned. Updating metadata keeps the stream's data and Created.
func bumpEpoch(ctx context.Context, js jetstream.JetStream, stream string, old int64) (int64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	if cur := epochOf(info); cur != old {
		return cur, nil
	}
	e := max(time.Now().UnixMilli(), old+1)
	cfg := info.Config
	cfg.Metadata = maps.Clone(cfg.Metadata)
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	cfg.Metadata[metaEpoch] = strconv.FormatInt(e, 10)
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return 0, fmt.Errorf("write the new epoch: %w", err)
	}
	return e, nil
}

// describe turns a NATS error into a sentence naming the problem.
func describe(what string, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("%s: JetStream is not enabled on the NATS server (run nats-server -js): %w", what, err)
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%s: the NATS server does not answer JetStream requests (is JetStream enabled? run nats-server -js): %w", what, err)
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: NATS not reachable: %w", what, err)
	case errors.As(err, &apiErr) && apiErr.Code == 403:
		return fmt.Errorf("%s: not permitted by the NATS account: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
