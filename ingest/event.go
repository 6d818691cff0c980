package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
)

// MaxClockSkew is the difference between a client's sentAt and the server's receivedAt above which
// the event timestamp is corrected by that difference (one offset for the whole message, so a
// device's own order is never changed).
const MaxClockSkew = 60 * time.Second

// Event is one decoded Segment message (track, page, screen, identify, alias or group). Raw keeps
// every byte the shop sent; the other fields are what Waymark reads from it.
type Event struct {
	Source      string // where it came from, e.g. a write key's source name or "replay-taobao"
	MessageID   string
	Type        string // track, page, screen, identify, alias, group
	Event       string // the track event name, or the page/screen name
	UserID      string
	AnonymousID string
	PreviousID  string // alias calls: the id being aliased to UserID

	Timestamp         time.Time // derived event time, see Decode
	OriginalTimestamp time.Time // zero when absent
	SentAt            time.Time // zero when absent
	ReceivedAt        time.Time

	PropertyKeys   []string // sorted property names
	PropertyValues []string // values as text: strings as they are, everything else as JSON
	PagePath       string   // context.page.path, or properties.path for page calls
	PageURL        string   // context.page.url, or properties.url for page calls
	Referrer       string   // context.page.referrer
	CampaignSource string   // context.campaign.source (utm_source)
	CampaignMedium string   // context.campaign.medium (utm_medium)
	CampaignName   string   // context.campaign.name (utm_campaign)
	SessionID      string   // a client-provided session id: context.sessionId, else properties.session_id

	Raw []byte
}

// CustomerKey is the key a customer's events share: the userId when present, else the anonymousId.
// It is the Kafka message key, so one customer's events stay in one partition.
func (e *Event) CustomerKey() string {
	if e.UserID != "" {
		return e.UserID
	}
	return e.AnonymousID
}

// Property returns the text value of a property and whether it is set.
func (e *Event) Property(name string) (string, bool) {
	i := sort.SearchStrings(e.PropertyKeys, name)
	if i < len(e.PropertyKeys) && e.PropertyKeys[i] == name {
		return e.PropertyValues[i], true
	}
	return "", false
}

// InvalidError says why a message cannot be used. Reason is a short stable code used as a metric
// label and in the dead-letter header; Field names the offending field when there is one.
type InvalidError struct {
	Reason string
	Field  string
	Err    error
}

func (e *InvalidError) Error() string {
	msg := e.Reason
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *InvalidError) Unwrap() error { return e.Err }

// Reasons a message is rejected.
const (
	ReasonInvalidJSON      = "invalid_json"
	ReasonInvalidType      = "invalid_type"
	ReasonMissingIdentity  = "missing_identity"
	ReasonMissingEvent     = "missing_event"
	ReasonInvalidTimestamp = "invalid_timestamp"
	ReasonInvalidField     = "invalid_field"
	ReasonTooLarge         = "too_large"
)

// RejectReason returns the reason code of an error from Decode, or "" if it is not an InvalidError.
func RejectReason(err error) string {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return ""
}

var knownTypes = map[string]bool{"track": true, "page": true, "screen": true, "identify": true, "alias": true, "group": true}

// wire is the part of a Segment message Waymark reads. Ids are json.RawMessage because SDKs send
// them as strings or numbers.
type wire struct {
	Type              string                     `json:"type"`
	Event             string                     `json:"event"`
	Name              string                     `json:"name"`
	MessageID         json.RawMessage            `json:"messageId"`
	UserID            json.RawMessage            `json:"userId"`
	AnonymousID       json.RawMessage            `json:"anonymousId"`
	PreviousID        json.RawMessage            `json:"previousId"`
	Timestamp         string                     `json:"timestamp"`
	OriginalTimestamp string                     `json:"originalTimestamp"`
	SentAt            string                     `json:"sentAt"`
	ReceivedAt        string                     `json:"receivedAt"`
	Properties        map[string]json.RawMessage `json:"properties"`
	Traits            map[string]json.RawMessage `json:"traits"`
	Context           struct {
		Traits map[string]json.RawMessage `json:"traits"`
		Device struct {
			Type string `json:"type"`
		} `json:"device"`
		UserAgent string `json:"userAgent"`
		Page      struct {
			Path     string `json:"path"`
			URL      string `json:"url"`
			Referrer string `json:"referrer"`
		} `json:"page"`
		Campaign struct {
			Source string `json:"source"`
			Medium string `json:"medium"`
			Name   string `json:"name"`
		} `json:"campaign"`
		SessionID json.RawMessage `json:"sessionId"`
	} `json:"context"`
}

// Decode parses and validates one Segment message. receivedAt is used when the message carries no
// receivedAt of its own (the Kafka record time for messages produced straight to Kafka).
//
// The event time is the message's timestamp if set, else originalTimestamp, else receivedAt. When
// only originalTimestamp is set and sentAt differs from receivedAt by more than MaxClockSkew, the
// time is corrected by that difference. A message without messageId gets one derived from its
// bytes, so the same message sent twice is one event.
func Decode(raw []byte, source string, receivedAt time.Time) (Event, error) {
	var w wire
	if err := json.Unmarshal(raw, &w); err != nil { // also rejects trailing data
		return Event{}, &InvalidError{Reason: ReasonInvalidJSON, Err: err}
	}
	e := Event{Source: source, Type: w.Type, Raw: raw}
	if !knownTypes[w.Type] {
		return Event{}, &InvalidError{Reason: ReasonInvalidType, Field: "type", Err: fmt.Errorf("%q is not one of track, page, screen, identify, alias, group", w.Type)}
	}
	var err error
	if e.MessageID, err = idString("messageId", w.MessageID); err != nil {
		return Event{}, err
	}
	if e.UserID, err = idString("userId", w.UserID); err != nil {
		return Event{}, err
	}
	if e.AnonymousID, err = idString("anonymousId", w.AnonymousID); err != nil {
		return Event{}, err
	}
	if e.PreviousID, err = idString("previousId", w.PreviousID); err != nil {
		return Event{}, err
	}
	if e.UserID == "" && e.AnonymousID == "" {
		return Event{}, &InvalidError{Reason: ReasonMissingIdentity, Field: "userId", Err: errors.New("one of userId or anonymousId is required")}
	}
	switch w.Type {
	case "track":
		if w.Event == "" {
			return Event{}, &InvalidError{Reason: ReasonMissingEvent, Field: "event", Err: errors.New("a track call needs an event name")}
		}
		e.Event = w.Event
	case "page", "screen":
		e.Event = w.Name
	}
	if e.MessageID == "" {
		sum := sha256.Sum256(raw)
		e.MessageID = "wm-" + hex.EncodeToString(sum[:16])
	}
	if err := e.setTimes(w, receivedAt); err != nil {
		return Event{}, err
	}
	e.PagePath = w.Context.Page.Path
	e.PageURL = w.Context.Page.URL
	e.Referrer = w.Context.Page.Referrer
	e.CampaignSource = w.Context.Campaign.Source
	e.CampaignMedium = w.Context.Campaign.Medium
	e.CampaignName = w.Context.Campaign.Name
	e.setProperties(w)
	if e.SessionID, err = idString("context.sessionId", w.Context.SessionID); err != nil {
		return Event{}, err
	}
	if e.SessionID == "" {
		e.SessionID, _ = e.Property("session_id")
	}
	if w.Type == "page" {
		if e.PagePath == "" {
			e.PagePath, _ = e.Property("path")
		}
		if e.PageURL == "" {
			e.PageURL, _ = e.Property("url")
		}
	}
	return e, nil
}

func (e *Event) setTimes(w wire, receivedAt time.Time) error {
	var err error
	parse := func(field, s string) time.Time {
		if s == "" || err != nil {
			return time.Time{}
		}
		t, perr := time.Parse(time.RFC3339Nano, s)
		if perr != nil {
			err = &InvalidError{Reason: ReasonInvalidTimestamp, Field: field, Err: perr}
		}
		return t.UTC()
	}
	ts := parse("timestamp", w.Timestamp)
	e.OriginalTimestamp = parse("originalTimestamp", w.OriginalTimestamp)
	e.SentAt = parse("sentAt", w.SentAt)
	e.ReceivedAt = parse("receivedAt", w.ReceivedAt)
	if err != nil {
		return err
	}
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = receivedAt.UTC()
	}
	switch {
	case !ts.IsZero():
		e.Timestamp = ts
	case !e.OriginalTimestamp.IsZero():
		e.Timestamp = e.OriginalTimestamp
		if !e.SentAt.IsZero() {
			if skew := e.ReceivedAt.Sub(e.SentAt); skew > MaxClockSkew || skew < -MaxClockSkew {
				e.Timestamp = e.OriginalTimestamp.Add(skew)
			}
		}
	default:
		e.Timestamp = e.ReceivedAt
	}
	if e.Timestamp.Year() < 2000 || e.Timestamp.Year() > 2100 {
		return &InvalidError{Reason: ReasonInvalidTimestamp, Field: "timestamp", Err: fmt.Errorf("%s is outside 2000..2100", e.Timestamp.Format(time.RFC3339))}
	}
	return nil
}

// setProperties collects the event's properties, its traits (identify calls' traits and
// context.traits, under TraitPrefix) and its device type (under DeviceTypeKey), sorted by name.
func (e *Event) setProperties(w wire) {
	props := w.Properties
	device := deviceType(w.Context.Device.Type, w.Context.UserAgent)
	if len(w.Traits)+len(w.Context.Traits) > 0 || device != "" {
		props = make(map[string]json.RawMessage, len(w.Properties)+len(w.Traits)+len(w.Context.Traits)+1)
		for k, v := range w.Context.Traits {
			props[TraitPrefix+k] = v
		}
		for k, v := range w.Traits {
			props[TraitPrefix+k] = v
		}
		for k, v := range w.Properties {
			props[k] = v
		}
		if device != "" {
			props[DeviceTypeKey], _ = json.Marshal(device)
		}
	}
	if len(props) == 0 {
		return
	}
	e.PropertyKeys = make([]string, 0, len(props))
	for k := range props {
		e.PropertyKeys = append(e.PropertyKeys, k)
	}
	sort.Strings(e.PropertyKeys)
	e.PropertyValues = make([]string, len(e.PropertyKeys))
	for i, k := range e.PropertyKeys {
		v := props[k]
		var s string
		if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
			e.PropertyValues[i] = s
		} else {
			e.PropertyValues[i] = string(v)
		}
	}
}

// TraitPrefix is put before a trait's name to store it with the event's properties, e.g.
// "traits.customer_type".
const TraitPrefix = "traits."

// DeviceTypeKey is the property under which an event's device type is stored: context.device.type
// when the client sends one, else mobile, tablet or desktop from context.userAgent.
const DeviceTypeKey = "context.device_type"

// deviceType is the client's device type, or one read from its user agent; "" when unknown.
func deviceType(declared, userAgent string) string {
	switch {
	case declared != "":
		return strings.ToLower(declared)
	case userAgent == "":
		return ""
	case strings.Contains(userAgent, "iPad") || strings.Contains(userAgent, "Tablet"):
		return "tablet"
	case strings.Contains(userAgent, "Mobi") || strings.Contains(userAgent, "Android"):
		return "mobile"
	}
	return "desktop"
}

// idString accepts an id sent as a JSON string or number; null or absent is "".
func idString(field string, v json.RawMessage) (string, error) {
	if len(v) == 0 || string(v) == "null" {
		return "", nil
	}
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", &InvalidError{Reason: ReasonInvalidField, Field: field, Err: err}
		}
		return s, nil
	}
	if _, err := strconv.ParseFloat(string(v), 64); err == nil {
		return string(v), nil
	}
	return "", &InvalidError{Reason: ReasonInvalidField, Field: field, Err: fmt.Errorf("want a string or a number, got %s", v)}
}
