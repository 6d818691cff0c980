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

// channelRule assigns a channel when all its set conditions hold. Rules are data: the first that
// matches wins.
type channelRule struct {
	channel  string
	mediums  []string // utm_medium values (lower case)
	sources  []string // utm_source values or referrer hosts, matched as host suffixes
	clickIDs []string // query parameters of the page URL (gclid, fbclid, …)
	referrer bool     // needs a referrer from another site
}

var searchHosts = []string{"google.", "bing.com", "duckduckgo.com", "yahoo.com", "baidu.com", "yandex.", "ecosia.org"}
var socialHosts = []string{"facebook.com", "instagram.com", "t.co", "twitter.com", "x.com", "linkedin.com", "pinterest.", "tiktok.com", "reddit.com", "youtube.com"}

// defaultChannelRules classify by campaign first, then click ids, then referrer.
var defaultChannelRules = []channelRule{
	{channel: ChannelPaidSearch, mediums: []string{"cpc", "ppc", "paidsearch", "paid_search", "sem"}, sources: searchHosts},
	{channel: ChannelPaidSocial, mediums: []string{"cpc", "ppc", "paid", "paidsocial", "paid_social", "social_paid"}, sources: socialHosts},
	{channel: ChannelPaidSearch, mediums: []string{"cpc", "ppc", "paidsearch", "paid_search", "sem"}},
	{channel: ChannelPaidSocial, mediums: []string{"paidsocial", "paid_social", "social_paid"}},
	{channel: ChannelEmail, mediums: []string{"email", "e-mail", "newsletter"}},
	{channel: ChannelAffiliate, mediums: []string{"affiliate", "affiliates", "partner"}},
	{channel: ChannelSocial, mediums: []string{"social", "social-network", "social-media", "sm"}},
	{channel: ChannelPaidSearch, clickIDs: []string{"gclid", "msclkid", "gbraid", "wbraid"}},
	{channel: ChannelPaidSocial, clickIDs: []string{"fbclid", "ttclid", "li_fat_id"}},
	{channel: ChannelSearch, sources: searchHosts, referrer: true},
	{channel: ChannelSocial, sources: socialHosts, referrer: true},
	{channel: ChannelReferral, referrer: true},
}

// Channel classifies where a touchpoint came from, from its campaign (utm) fields, click ids in
// the page URL and its referrer. Events without any of them are direct.
func Channel(e *ingest.Event) string {
	medium := strings.ToLower(e.CampaignMedium)
	source := strings.ToLower(e.CampaignSource)
	refHost := ""
	if u, err := url.Parse(e.Referrer); err == nil {
		refHost = strings.ToLower(u.Hostname())
	}
	var query url.Values
	if u, err := url.Parse(e.PageURL); err == nil {
		query = u.Query()
	}
	for _, r := range defaultChannelRules {
		if r.matches(medium, source, refHost, query) {
			return r.channel
		}
	}
	if medium != "" || source != "" {
		return ChannelOther
	}
	return ChannelDirect
}

func (r channelRule) matches(medium, source, refHost string, query url.Values) bool {
	if len(r.mediums) > 0 && !slices.Contains(r.mediums, medium) {
		return false
	}
	if len(r.clickIDs) > 0 {
		found := false
		for _, id := range r.clickIDs {
			found = found || query.Has(id)
		}
		if !found {
			return false
		}
	}
	if r.referrer && refHost == "" {
		return false
	}
	if len(r.sources) > 0 {
		host := source
		if r.referrer || host == "" {
			host = refHost
		}
		if !hostMatches(host, r.sources) {
			return false
		}
	}
	return len(r.mediums) > 0 || len(r.clickIDs) > 0 || r.referrer
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
