package sessionize

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

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
	ChannelDisplay    = "display"
	ChannelSMS        = "sms"
	ChannelDirect     = "direct"
	ChannelOther      = "other"
)

// ChannelRule assigns a channel when all its set conditions hold. Rules are data, overridable in
// the journey map (`channels:`): the first that matches wins; a touchpoint no rule matches is
// "other" when it has campaign fields, else "direct".
type ChannelRule struct {
	Channel string   `yaml:"channel"`
	Mediums []string `yaml:"medium,omitempty"` // utm_medium values (lower case)
	// PaidMedium needs a paid utm_medium by Google Analytics 4's default channel group: one
	// matching ^(.*cp.*|ppc|retargeting|paid.*)$ (cpc, cpm, paid, paid_social, retargeting…).
	PaidMedium bool `yaml:"paid_medium,omitempty"`
	// Sources are sites, matched against the utm_source (or, with Referrer, the referrer's host;
	// with a medium condition and no utm_source, the referrer's host too): a name without a dot
	// (facebook, ig) matches a utm_source equal to it; a domain (facebook.com) matches itself and
	// its subdomains; a host ending in a dot (google., search.yahoo.) is that host under any of
	// ICANN's public suffixes, with its subdomains (google.de, www.google.co.uk,
	// r.search.yahoo.co.jp; not google.evil.example nor google.netlify.app). A leading = takes the
	// host alone, without its subdomains: =www.google. matches www.google.de, not mail.google.de;
	// =baidu.com matches baidu.com, not tieba.baidu.com. Values are matched in any case.
	Sources  []string `yaml:"source,omitempty"`
	ClickIDs []string `yaml:"click_id,omitempty"` // query parameters of the page URL (gclid, fbclid, …)
	Referrer bool     `yaml:"referrer,omitempty"` // needs a referrer, and Sources then match its host
}

// normalize writes a rule's mediums and sources as classify compares them: lower case, without
// surrounding spaces (a map's "CPC" or "Facebook" matches a touchpoint's cpc or facebook), and a
// source's host in its ASCII form (hostForm: bücher.example is xn--bcher-kva.example), its
// leading "=" and final "." kept.
func (r *ChannelRule) normalize() {
	for i, v := range r.Mediums {
		r.Mediums[i] = strings.ToLower(strings.TrimSpace(v))
	}
	for i, v := range r.Sources {
		v = strings.TrimSpace(v)
		exact, dot := strings.HasPrefix(v, "="), strings.HasSuffix(v, ".")
		v = hostForm(strings.TrimSuffix(strings.TrimPrefix(v, "="), "."))
		if exact {
			v = "=" + v
		}
		if dot {
			v += "."
		}
		r.Sources[i] = v
	}
}

// hostForm writes a host, or a utm_source or a channel rule's source, in the one form they are
// compared in: lower case, and an internationalised domain name in its ASCII form, as IDNA's
// ToASCII for lookup writes it (RFC 5891; golang.org/x/net/idna: bücher.example is
// xn--bcher-kva.example). Browsers send hosts in that form, while server-side and app libraries
// send what they were given, so a page on xn--bcher-kva.example referred from bücher.example is
// one site (tester 35's F9); the Public Suffix List lookup (ownSite, siteMatches) expects it too.
// Text that is no domain name (a utm_source "Spring Sale") is only lower-cased.
func hostForm(s string) string {
	s = strings.ToLower(s)
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			if ascii, err := idna.Lookup.ToASCII(s); err == nil {
				return ascii
			}
			return s
		}
	}
	return s
}

// searchSites and socialSites are the search engines and social networks the default rules know,
// by the names shops write in utm_source and by their hosts: Google Analytics 4's default channel
// group matches utm_source against lists of such sites (its "source categories", names and hosts
// alike), so utm_source=facebook is Facebook as much as facebook.com is.
//
// A search engine is its search hosts, not its whole domain: Google and Yahoo run webmail, sign-in,
// documents, calendars, app stores and more under the same domain, and a click from Gmail
// (mail.google.com) or a return from "Sign in with Google" (accounts.google.com) is a referral, as
// the Gmail app's is, not a search. So Google is google.<suffix> and www.google.<suffix> only, and
// news.google.com, listed as search by GA4's source categories; Yahoo is search.yahoo.<suffix> with
// its subdomains (r.search.yahoo.com, which result clicks pass through, uk.search.yahoo.com);
// Yandex, Baidu and Ecosia their search hosts (not mail.yandex.ru, tieba.baidu.com, a forum, nor
// blog.ecosia.org). Bing and DuckDuckGo keep their domains with the subdomains: every host of them
// (www, cn, html, lite) is their search. GA4's list also names a few webmail hosts as search
// (mail.google.com, mail.yandex.ru); we do not follow it there, as no search is made on them.
//
// A social network's domain is social with its subdomains (m.facebook.com, l.instagram.com,
// old.reddit.com, uk.pinterest.com), but for its sign-in hosts (socialSignIn).
var (
	searchSites = []string{"google", "=google.", "=www.google.", "=news.google.com",
		"bing", "bing.com", "duckduckgo", "duckduckgo.com", "yahoo", "search.yahoo.",
		"baidu", "=baidu.com", "=www.baidu.com", "=m.baidu.com", "yandex", "=yandex.", "=www.yandex.",
		"ecosia", "=ecosia.org", "=www.ecosia.org",
		// More of GA4's search sites (tester 34's F3), by their search hosts as above.
		"naver", "search.naver.com", "aol", "search.aol.", "ask", "ask.com", "qwant", "qwant.com",
		"sogou", "sogou.com", "=so.com", "=www.so.com", "=m.so.com", "=go.mail.ru", "=ya.ru",
		"seznam", "=seznam.cz", "=www.seznam.cz", "search.seznam.cz", "msn", "=msn.com", "=www.msn.com",
		"daum", "=daum.net", "=www.daum.net", "search.daum.net", "rambler", "=rambler.ru", "=www.rambler.ru",
		"nova.rambler.ru", "startpage", "startpage.com", "=search.brave.com",
		"com.google.android.googlequicksearchbox"} // the Google app's referrer, android-app://…
	socialSites = []string{"facebook", "fb", "facebook.com", "fb.com", "fb.me", "instagram", "ig", "instagram.com",
		"twitter", "twitter.com", "t.co", "x.com", "linkedin", "linkedin.com", "lnkd.in", "pinterest", "pinterest.",
		"tiktok", "tiktok.com", "reddit", "reddit.com", "youtube", "youtube.com", "youtu.be", "snapchat", "snapchat.com",
		"threads", "threads.net", "whatsapp", "whatsapp.com",
		// More of GA4's social sites (tester 34's F3).
		"vk", "vk.com", "quora", "quora.com", "=news.ycombinator.com", "messenger", "messenger.com",
		"telegram", "t.me", "=web.telegram.org", "line", "line.me", "wechat", "weibo", "weibo.com",
		"medium.com", "tumblr", "tumblr.com", "discord", "discord.com", "mastodon.social", "bsky.app",
		// The networks' Android apps, as their referrers name them (android-app://com.facebook.katana/).
		"com.facebook.katana", "com.facebook.orca", "com.instagram.android", "com.linkedin.android",
		"com.twitter.android", "com.zhiliaoapp.musically", "com.reddit.frontpage", "com.pinterest",
		"org.telegram.messenger", "com.whatsapp"}
	// socialSignIn are hosts of social networks' domains that sign a visitor in ("Sign in with X",
	// Snap's Login Kit, Google's sign-in passing through YouTube's): returning from them is a
	// referral, as returning from accounts.google.com is, not a visit from the network.
	socialSignIn = []string{"=api.twitter.com", "=api.x.com", "=accounts.snapchat.com", "=accounts.youtube.com"}
)

// defaultChannelRules classify by campaign first, then click ids, then referrer. The campaign
// rules take the order of Google Analytics 4's default channel group, where the first rule that
// matches wins: Direct, Paid Search, Paid Social, Display, Paid Other, Organic Social, Organic
// Search, Referral, Email, Affiliates, SMS (its Cross-network, shopping, video, audio and push
// channels are none of Waymark's). A paid medium from a known site goes to that site's kind (Paid
// Search, Paid Social); a search medium from any other source is paid search (cpc is Google Ads'
// and Microsoft Ads' medium); a site named in utm_source without a paid medium is organic
// (Organic Social, Organic Search) whatever its medium, as GA4 checks the known sites before the
// referral, email, affiliate and sms mediums: facebook/referral is social, google/email search.
var defaultChannelRules = []ChannelRule{
	// Google Analytics' own tags for no campaign, as exports and proxies write them.
	{Channel: ChannelDirect, Mediums: []string{"(none)", "(not set)"}, Sources: []string{"(direct)"}},
	{Channel: ChannelPaidSearch, PaidMedium: true, Sources: searchSites},
	{Channel: ChannelPaidSocial, PaidMedium: true, Sources: socialSites},
	{Channel: ChannelDisplay, Mediums: []string{"display", "banner", "expandable", "interstitial", "cpm"}},
	{Channel: ChannelPaidSearch, Mediums: []string{"cpc", "ppc", "paidsearch", "paid_search", "paid-search", "sem"}},
	{Channel: ChannelPaidSocial, Mediums: []string{"paidsocial", "paid_social", "paid-social", "social_paid"}},
	{Channel: ChannelSocial, Mediums: []string{"social", "social-network", "social-media", "sm", "social network", "social media"}},
	{Channel: ChannelSocial, Sources: socialSites},
	{Channel: ChannelSearch, Mediums: []string{"organic"}},
	{Channel: ChannelSearch, Sources: searchSites},
	{Channel: ChannelReferral, Mediums: []string{"referral", "app", "link"}},
	{Channel: ChannelEmail, Mediums: []string{"email", "e-mail", "e_mail", "e mail", "newsletter"}},
	{Channel: ChannelEmail, Sources: []string{"email", "e-mail", "e_mail", "e mail"}},
	{Channel: ChannelAffiliate, Mediums: []string{"affiliate", "affiliates", "partner"}},
	{Channel: ChannelSMS, Mediums: []string{"sms"}},
	{Channel: ChannelSMS, Sources: []string{"sms"}},
	{Channel: ChannelPaidSearch, ClickIDs: []string{"gclid", "msclkid", "gbraid", "wbraid"}},
	// Not fbclid: Facebook adds it to every outbound link, organic posts and shares too, so it
	// marks no ad click (GA4 does not read it either).
	{Channel: ChannelPaidSocial, ClickIDs: []string{"ttclid", "li_fat_id"}},
	// Campaign Manager 360's and Display & Video 360's click id, which Google Analytics reads as
	// Display (tester 43).
	{Channel: ChannelDisplay, ClickIDs: []string{"dclid"}},
	{Channel: ChannelReferral, Sources: socialSignIn, Referrer: true},
	{Channel: ChannelSearch, Sources: searchSites, Referrer: true},
	{Channel: ChannelSocial, Sources: socialSites, Referrer: true},
	{Channel: ChannelReferral, Referrer: true},
}

// Channel classifies a touchpoint with the default channel rules, taking a referrer from the
// page's own site for none (see ownSite).
func Channel(e *ingest.Event) string { return classify(defaultChannelRules, nil, e) }

// Channel classifies a touchpoint with the map's channel rules, or the defaults, taking a referrer
// from the page's own site for none (see ownSite).
func (m *Map) Channel(e *ingest.Event) string { return m.channel(e, nil) }

// channel is Channel with ownDomains, more domains whose referrers are the shop's own
// (Config.OwnDomains).
func (m *Map) channel(e *ingest.Event, ownDomains []string) string {
	if len(m.Channels) > 0 {
		return classify(m.Channels, ownDomains, e)
	}
	return classify(defaultChannelRules, ownDomains, e)
}

// ownSite reports whether a referrer from refHost is the shop's own navigation, which is no
// touchpoint's source: refHost is on the site of the page (pageHost), or is one of ownDomains
// (as hostForm writes them, no leading dot) or a subdomain of one. A site is a registrable domain (eTLD+1 by
// the Public Suffix List): www.shop.example, shop.example and checkout.shop.example are one
// site, and so one another's own navigation, while a.github.io and b.github.io, or two
// myshopify.com shops, are not. This is what Amplitude's browser SDK does by default (its
// excluded referrers, getDefaultExcludedReferrers, are the cookie domain, by default the
// registrable domain, with its subdomains; excludeInternalReferrers compares registrable domains)
// and what Google Analytics does with a self-referral (its own domain is excluded, and
// unwanted-referral domains are matched with their subdomains). An IP address or a name with no
// registrable domain (localhost) is its own site only when the hosts are equal. ownDomains add
// what no page URL shows, such as a checkout or payment site on another domain, as Amplitude's
// excludeReferrers and GA's list of unwanted referrals do.
func ownSite(refHost, pageHost string, ownDomains []string) bool {
	if refHost == "" {
		return false
	}
	for _, d := range ownDomains {
		if refHost == d || strings.HasSuffix(refHost, "."+d) {
			return true
		}
	}
	if pageHost == "" {
		return false
	}
	if refHost == pageHost {
		return true
	}
	if _, err := netip.ParseAddr(refHost); err == nil {
		return false
	}
	ref, err1 := publicsuffix.EffectiveTLDPlusOne(refHost)
	page, err2 := publicsuffix.EffectiveTLDPlusOne(pageHost)
	return err1 == nil && err2 == nil && ref == page
}

// ParseOwnDomains reads a comma-separated list of domains (Config.OwnDomains): each a host name
// such as pay.example or checkout.shop.example, in any case, an internationalised one in either
// form (kept in its ASCII form, hostForm), with an optional leading dot (as a
// cookie domain is written), spaces around it dropped. An entry that is no domain name (a URL, a
// port, a path, an empty entry) is an error naming it.
func ParseOwnDomains(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []string
	for _, d := range strings.Split(list, ",") {
		d = hostForm(strings.TrimPrefix(strings.TrimSpace(d), "."))
		if err := checkDomain(d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// checkDomain refuses d unless it is a domain name as ParseOwnDomains writes it: lower case
// labels of letters, digits, '-' and '_', separated by single dots.
func checkDomain(d string) error {
	for _, label := range strings.Split(d, ".") {
		if label == "" || strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return fmt.Errorf("%q is no domain name (write pay.example, not a URL)", d)
		}
	}
	return nil
}

// urlHost is the host of a URL as hosts are compared (hostForm: lower case, an internationalised
// name in its ASCII form), without a port or a final dot; "" when it has none.
func urlHost(u *url.URL) string {
	return hostForm(strings.TrimSuffix(u.Hostname(), "."))
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
// fields, click ids in the page URL and its referrer. A referrer from the shop's own site (ownSite)
// is no referrer: moving from page to page is no referral, so such an event is direct unless a
// campaign or a click id says otherwise, as Amplitude and Google Analytics attribute it.
func classify(rules []ChannelRule, ownDomains []string, e *ingest.Event) string {
	medium := strings.ToLower(strings.TrimSpace(e.CampaignMedium))
	source := hostForm(strings.TrimSpace(e.CampaignSource))
	if medium == "" && source == "" && e.Referrer == "" && e.PageURL == "" {
		return ChannelDirect // the common case, without parsing anything
	}
	refHost, pageHost := "", ""
	if u, err := url.Parse(e.Referrer); err == nil {
		refHost = urlHost(u)
		if refHost == "" && u.Scheme == "" && !strings.HasPrefix(e.Referrer, "/") {
			// A referrer without its scheme (www.google.com/search, as some app SDKs send it)
			// names its host first.
			if u, err := url.Parse("https://" + e.Referrer); err == nil {
				refHost = urlHost(u)
			}
		}
	}
	var query url.Values
	if u, err := url.Parse(e.PageURL); err == nil {
		pageHost = urlHost(u)
		if u.RawQuery != "" {
			query = u.Query()
		}
	}
	if ownSite(refHost, pageHost, ownDomains) {
		refHost = ""
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
	if r.PaidMedium && !paidMedium(medium) {
		return false
	}
	if len(r.ClickIDs) > 0 && !slices.ContainsFunc(r.ClickIDs, query.Has) {
		return false
	}
	if r.Referrer && refHost == "" {
		return false
	}
	hasMedium := len(r.Mediums) > 0 || r.PaidMedium
	if len(r.Sources) > 0 {
		site := source
		switch {
		case r.Referrer:
			site = refHost
		case source == "" && hasMedium:
			site = refHost // a campaign medium without a source: the referrer names it
		}
		if site == "" || !siteMatches(site, r.Sources) {
			return false
		}
	}
	return hasMedium || len(r.ClickIDs) > 0 || r.Referrer || len(r.Sources) > 0
}

// paidMedium reports whether a utm_medium (lower case) is a paid one by Google Analytics 4's
// default channel group: ^(.*cp.*|ppc|retargeting|paid.*)$.
func paidMedium(medium string) bool {
	return strings.Contains(medium, "cp") || medium == "ppc" || medium == "retargeting" || strings.HasPrefix(medium, "paid")
}

// siteMatches reports whether site, a utm_source or a host (lower case), is one of patterns (see
// ChannelRule.Sources).
func siteMatches(site string, patterns []string) bool {
	for _, p := range patterns {
		host, exact := strings.CutPrefix(p, "=")
		switch {
		case !strings.Contains(host, "."): // a name: the utm_source equal to it
			if site == host {
				return true
			}
			continue
		case strings.HasSuffix(host, "."): // the name under a public suffix: google.de, google.co.uk
			// ICANN's suffixes only: the list's private ones (netlify.app, github.io, blogspot.com)
			// are anyone's to register under, so google.netlify.app is not Google.
			suffix, icann := publicsuffix.PublicSuffix(site)
			if !icann {
				continue
			}
			host += suffix
		}
		if site == host || !exact && strings.HasSuffix(site, "."+host) {
			return true
		}
	}
	return false
}
