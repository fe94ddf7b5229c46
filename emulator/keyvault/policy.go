package keyvault

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// policy is a key rotation policy as the service reads and writes it.
type policy struct {
	ID              string           `json:"id,omitempty"`
	LifetimeActions []lifetimeAction `json:"lifetimeActions"`
	Attributes      policyAttrs      `json:"attributes"`
}

type lifetimeAction struct {
	Trigger trigger `json:"trigger"`
	Action  action  `json:"action"`
}

type trigger struct {
	TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
	TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
}

type action struct {
	Type string `json:"type"`
}

type policyAttrs struct {
	ExpiryTime string `json:"expiryTime,omitempty"`
	Created    *int64 `json:"created,omitempty"`
	Updated    *int64 `json:"updated,omitempty"`
}

// defaultNotify is the action the service adds to every policy, and the
// whole policy of a key that never had one.
var defaultNotify = lifetimeAction{Trigger: trigger{TimeBeforeExpiry: "P30D"}, Action: action{Type: "Notify"}}

func (s *Server) getRotationPolicy(c *call) (any, error) {
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	k, _, err := s.vault.find(c.name, "")
	if err != nil {
		return nil, err
	}
	if k.policy == nil {
		return policy{LifetimeActions: []lifetimeAction{defaultNotify}}, nil
	}
	return k.policy.render(), nil
}

func (s *Server) updateRotationPolicy(c *call) (any, error) {
	var in policy
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	p, err := normalizePolicy(in)
	if err != nil {
		return nil, err
	}
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	k, _, err := s.vault.find(c.name, "")
	if err != nil {
		return nil, err
	}
	created := c.now
	if k.policy != nil && k.policy.Attributes.Created != nil {
		created = *k.policy.Attributes.Created
	}
	now := c.now
	p.ID = c.vw.keyURL(k) + "/rotationpolicy"
	p.Attributes.Created, p.Attributes.Updated = &created, &now
	k.policy = &p
	return p.render(), nil
}

// normalizePolicy validates a policy and adds the default Notify action
// when there is none, as the service does.
func normalizePolicy(in policy) (policy, error) {
	p := policy{Attributes: policyAttrs{ExpiryTime: in.Attributes.ExpiryTime}}
	if e := p.Attributes.ExpiryTime; e != "" {
		if _, ok := parseISODuration(e); !ok {
			return policy{}, badParameter("The value of parameter expiryTime (%s) is invalid.", e)
		}
	}
	notify := false
	for _, la := range in.LifetimeActions {
		t, ok := normalizeAction(la.Action.Type)
		d := la.Trigger.TimeAfterCreate + la.Trigger.TimeBeforeExpiry
		_, durOK := parseISODuration(d)
		if !ok || !durOK || (la.Trigger.TimeAfterCreate != "" && la.Trigger.TimeBeforeExpiry != "") {
			return policy{}, badParameter("The rotation policy lifetime action is invalid.")
		}
		la.Action.Type = t
		notify = notify || t == "Notify"
		p.LifetimeActions = append(p.LifetimeActions, la)
	}
	if !notify {
		p.LifetimeActions = append(p.LifetimeActions, defaultNotify)
	}
	return p, nil
}

func normalizeAction(t string) (string, bool) {
	switch strings.ToLower(t) {
	case "rotate":
		return "Rotate", true
	case "notify":
		return "Notify", true
	}
	return "", false
}

func (p *policy) render() policy {
	out := *p
	out.LifetimeActions = append([]lifetimeAction(nil), p.LifetimeActions...)
	out.Attributes.Created, out.Attributes.Updated = clonePtr(p.Attributes.Created), clonePtr(p.Attributes.Updated)
	return out
}

var isoDurationRE = regexp.MustCompile(`^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$`)

// parseISODuration reads the ISO 8601 durations rotation policies use
// (P90D, P1Y, PT12H); a year is 365 days and a month 30, as in Key Vault.
func parseISODuration(s string) (time.Duration, bool) {
	m := isoDurationRE.FindStringSubmatch(s)
	if m == nil || s == "P" || strings.HasSuffix(s, "T") {
		return 0, false
	}
	units := []time.Duration{365 * 24 * time.Hour, 30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour, time.Hour, time.Minute, time.Second}
	var d time.Duration
	for i, u := range units {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.ParseInt(m[i+1], 10, 64)
		if err != nil || n > 1<<20 {
			return 0, false
		}
		d += time.Duration(n) * u
	}
	return d, true
}
