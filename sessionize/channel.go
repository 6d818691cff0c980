package sessionize

import (
	"net/url"
	"slices"
	"strings"

	"github.com/waymark-dev/waymark/ingest"
)

// Channels a touchpoint can come from.
const (
	ChannelPaidSearch = "paid_search"
	ChannelPaidSocial = "paid_social"
	ChannelSearch     = "search"
	ChannelSocial     = "social"
	ChannelEmail      = "email"
	ChannelAffiliate  = "affiliate"
	ChannelReferral   = "referral"
	ChannelDirect     = "direct"
	ChannelOther      = "other"
)

// ChannelRule assigns a channel when all its set conditions hold. Rules are data, overridable in
// the journey map (`channels:`): the first that matches wins; a touchpoint no rule matches is
// "other" when it has campaign fields, else "direct".
type ChannelRule struct {
	Channel  string   `yaml:"channel"`
	Mediums  []string `yaml:"medium,omitempty"`   // utm_medium values (lower case)
	Sources  []string `yaml:"source,omitempty"`   // utm_source values or referrer hosts; "google." matches any google TLD
	ClickIDs []string `yaml:"click_id,omitempty"` // query parameters of the page URL (gclid, fbclid, …)
	Referrer bool     `yaml:"referrer,omitempty"` // needs a referrer, and Sources then match its host
}

var searchHosts = []string{"google.", "bing.com", "duckduckgo.com", "yahoo.com", "baidu.com", "yandex.", "ecosia.org"}
var socialHosts = []string{"facebook.com", "instagram.com", "t.co", "twitter.com", "x.com", "linkedin.com", "pinterest.", "tiktok.com", "reddit.com", "youtube.com"}

// defaultChannelRules classify by campaign first, then click ids, then referrer.
var defaultChannelRules = []ChannelRule{
	{Channel: ChannelPaidSearch, Mediums: []string{"cpc", "ppc", "paidsearch", "paid_search", "sem"}, Sources: searchHosts},
	{Channel: ChannelPaidSocial, Mediums: []string{"cpc", "ppc", "paid", "paidsocial", "paid_social", "social_paid"}, Sources: socialHosts},
	{Channel: ChannelPaidSearch, Mediums: []string{"cpc", "ppc", "paidsearch", "paid_search", "sem"}},
	{Channel: ChannelPaidSocial, Mediums: []string{"paidsocial", "paid_social", "social_paid"}},
	{Channel: ChannelEmail, Mediums: []string{"email", "e-mail", "newsletter"}},
	{Channel: ChannelAffiliate, Mediums: []string{"affiliate", "affiliates", "partner"}},
	{Channel: ChannelSocial, Mediums: []string{"social", "social-network", "social-media", "sm"}},
	{Channel: ChannelPaidSearch, ClickIDs: []string{"gclid", "msclkid", "gbraid", "wbraid"}},
	{Channel: ChannelPaidSocial, ClickIDs: []string{"fbclid", "ttclid", "li_fat_id"}},
	{Channel: ChannelSearch, Sources: searchHosts, Referrer: true},
	{Channel: ChannelSocial, Sources: socialHosts, Referrer: true},
	{Channel: ChannelReferral, Referrer: true},
}

// Channel classifies a touchpoint with the default channel rules.
func Channel(e *ingest.Event) string { return classify(defaultChannelRules, e) }

// Channel classifies a touchpoint with the map's channel rules, or the defaults.
func (m *Map) Channel(e *ingest.Event) string {
	if len(m.Channels) > 0 {
		return classify(m.Channels, e)
	}
	return Channel(e)
}

func (m *Map) channelNames() []string {
	rules := m.Channels
	if len(rules) == 0 {
		rules = defaultChannelRules
	}
	names := []string{ChannelDirect, ChannelOther}
	for _, r := range rules {
		if !slices.Contains(names, r.Channel) {
			names = append(names, r.Channel)
		}
	}
	return names
}

func (m *Map) knownChannel(name string) bool { return slices.Contains(m.channelNames(), name) }

// classify returns the channel of the first rule that matches, from the event's campaign (utm)
// fields, click ids in the page URL and its referrer.
func classify(rules []ChannelRule, e *ingest.Event) string {
	medium := strings.ToLower(e.CampaignMedium)
	source := strings.ToLower(e.CampaignSource)
	if medium == "" && source == "" && e.Referrer == "" && e.PageURL == "" {
		return ChannelDirect // the common case, without parsing anything
	}
	refHost := ""
	if u, err := url.Parse(e.Referrer); err == nil {
		refHost = strings.ToLower(u.Hostname())
	}
	var query url.Values
	if u, err := url.Parse(e.PageURL); err == nil && u.RawQuery != "" {
		query = u.Query()
	}
	for _, r := range rules {
		if r.matches(medium, source, refHost, query) {
			return r.Channel
		}
	}
	if medium != "" || source != "" {
		return ChannelOther
	}
	return ChannelDirect
}

func (r ChannelRule) matches(medium, source, refHost string, query url.Values) bool {
	if len(r.Mediums) > 0 && !slices.Contains(r.Mediums, medium) {
		return false
	}
	if len(r.ClickIDs) > 0 && !slices.ContainsFunc(r.ClickIDs, query.Has) {
		return false
	}
	if r.Referrer && refHost == "" {
		return false
	}
	if len(r.Sources) > 0 {
		host := source
		if r.Referrer || host == "" {
			host = refHost
		}
		if !hostMatches(host, r.Sources) {
			return false
		}
	}
	return len(r.Mediums) > 0 || len(r.ClickIDs) > 0 || r.Referrer
}

func hostMatches(host string, patterns []string) bool {
	for _, p := range patterns {
		if strings.HasSuffix(p, ".") {
			if strings.HasPrefix(host, p) || strings.Contains(host, "."+p) {
				return true
			}
			continue
		}
		if host == p || strings.HasSuffix(host, "."+p) {
			return true
		}
	}
	return false
}
