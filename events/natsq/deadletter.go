package natsq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers on dead-lettered messages.
const (
	HeaderReason        = "Cmkd-Dlq-Reason"
	HeaderStream        = "Cmkd-Dlq-Stream"
	HeaderStreamSeq     = "Cmkd-Dlq-Stream-Seq"
	HeaderDeliveryCount = "Cmkd-Dlq-Delivery-Count"
	HeaderSubject       = "Cmkd-Dlq-Subject"
	// HeaderMsgID is the original's Nats-Msg-Id, if it had one.
	HeaderMsgID = "Cmkd-Dlq-Msg-Id"
	// HeaderBodySize and HeaderBodySHA256 (hex) identify the original body.
	HeaderBodySize   = "Cmkd-Dlq-Body-Size"
	HeaderBodySHA256 = "Cmkd-Dlq-Body-Sha256"
	// HeaderBodyOmitted, when present, says why the dead letter carries no
	// body: the original did not fit in the server's max payload with the
	// dead-letter headers. The dead letter is then a reference: stream,
	// sequence, size and digest of what was lost.
	HeaderBodyOmitted = "Cmkd-Dlq-Body-Omitted"
)

// Bounds on header values we derive from the message or an error: either
// can be any length, and the dead letter must fit the max payload.
const (
	maxReasonBytes = 512
	maxMsgIDBytes  = 256
	// maxHeaderBytes is JetStream's limit on a message's headers (error
	// 10097), apart from the max payload.
	maxHeaderBytes = 64 << 10
)

// Why a message is dead-lettered, the "reason_kind" label of
// cmkd_natsq_dead_lettered_total.
const (
	kindMalformed = "malformed" // its body does not decode
	kindRejected  = "rejected"  // a handler failed it permanently
	kindExhausted = "exhausted" // out of deliveries
)

// What became of it, the "outcome" label.
const (
	dlCopied    = "copied"    // the dead letter holds the message
	dlReference = "reference" // the body did not fit: a reference to it
	dlDropped   = "dropped"   // no dead letter could be stored
)

// deadLetter copies the message to the dead-letter subject, then
// terminates it. If the copy fails the message is redelivered, and the
// copy tried again, while the consumer still grants deliveries; on the
// last one it is terminated all the same, logged as an error and counted
// as dropped: left unacknowledged it would stay in the work queue for ever.
func (s *Source) deadLetter(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, kind, reason string) {
	dl, form := s.deadLetterMsg(msg, md, reason)
	attrs := []any{
		slog.String("reason", dl.Header.Get(HeaderReason)), slog.String("stream", md.Stream),
		slog.Uint64("stream_seq", md.Sequence.Stream), slog.Uint64("delivery", md.NumDelivered),
		slog.String("body_sha256", dl.Header.Get(HeaderBodySHA256)),
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.js.PublishMsg(pctx, dl)
	switch {
	case err == nil:
		err := msg.Term()
		if err == nil {
			s.m.deadLettered.WithLabelValues(kind, form).Inc()
		}
		s.settle(msg, outcomeDLQ, err, append(attrs, slog.String("dead_letter", form))...)
	case md.NumDelivered < s.lastDelivery.Load():
		s.settle(msg, outcomeNak, msg.NakWithDelay(s.retryDelay(0, md.NumDelivered)),
			append(attrs, slog.String("dead_letter", "publish failed, retried on the next delivery"), slog.Any("err", err))...)
	default:
		s.log.Error("natsq: message dropped: no dead letter could be stored on its last delivery",
			append(attrs, slog.String("subject", msg.Subject()), slog.Any("err", err))...)
		err := msg.Term()
		if err == nil {
			s.m.deadLettered.WithLabelValues(kind, dlDropped).Inc()
		}
		s.settle(msg, outcomeDropped, err, attrs...)
	}
}

// deadLetterMsg builds the dead letter: the body and the original's
// headers, except Nats-* ones, which instruct the server (an expected
// stream, last sequence or TTL meant for CMKD_EVENTS would make the
// dead-letter stream refuse or expire the copy), plus ours. When that does
// not fit the server's max payload (or JetStream's header limit) it is a
// reference instead, without body or original headers.
func (s *Source) deadLetterMsg(msg jetstream.Msg, md *jetstream.MsgMetadata, reason string) (*nats.Msg, string) {
	body := msg.Data()
	sum := sha256.Sum256(body)
	ours := nats.Header{}
	ours.Set(HeaderReason, headerValue(reason, maxReasonBytes))
	ours.Set(HeaderStream, md.Stream)
	ours.Set(HeaderStreamSeq, strconv.FormatUint(md.Sequence.Stream, 10))
	ours.Set(HeaderDeliveryCount, strconv.FormatUint(md.NumDelivered, 10))
	ours.Set(HeaderSubject, msg.Subject())
	ours.Set(HeaderBodySize, strconv.Itoa(len(body)))
	ours.Set(HeaderBodySHA256, hex.EncodeToString(sum[:]))
	if id := msg.Headers().Get(nats.MsgIdHdr); id != "" {
		ours.Set(HeaderMsgID, headerValue(id, maxMsgIDBytes))
	}
	// The id makes a repeated copy of the same message (crash between copy
	// and Term) a duplicate the stream drops.
	ours.Set(nats.MsgIdHdr, fmt.Sprintf("dlq-%s-%d", md.Stream, md.Sequence.Stream))

	dl := nats.NewMsg(s.cfg.DLQSubject)
	for k, v := range msg.Headers() {
		if lk := strings.ToLower(k); !strings.HasPrefix(lk, "nats-") && !strings.HasPrefix(lk, "cmkd-dlq-") {
			dl.Header[k] = v
		}
	}
	for k, v := range ours {
		dl.Header[k] = v
	}
	dl.Data = body
	hdr, limit := headerSize(dl.Header), s.js.Conn().MaxPayload()
	if hdr <= maxHeaderBytes && (limit <= 0 || int64(len(body)+hdr) <= limit) {
		return dl, dlCopied
	}
	ref := nats.NewMsg(s.cfg.DLQSubject)
	ref.Header = ours
	ref.Header.Set(HeaderBodyOmitted, fmt.Sprintf("body of %d bytes and headers of %d bytes over the max payload of %d bytes", len(body), hdr, limit))
	return ref, dlReference
}

// headerSize is what h adds to a message on the wire, as nats.go encodes
// it ("NATS/1.0\r\n", "Key: value\r\n" each, "\r\n"), or a little more.
func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}

// headerValue makes s one line of valid UTF-8 of at most n bytes.
func headerValue(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
	if len(s) <= n {
		return s
	}
	const more = "…"
	cut := n - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}
