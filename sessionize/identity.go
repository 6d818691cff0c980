package sessionize

import (
	"slices"
	"strings"
)

// identities is a union-find over customer ids ("u:" user ids, "a:" anonymous ids): identify and
// alias calls, and any event carrying both ids, link two ids into one person. Two persons that
// each have a userId are joined only by an alias (see link). A person holds at most maxIDs ids; a
// link that would make one larger is refused (a runaway merge: a shared kiosk, a bad
// integration), never silently merging everyone.
type identities struct {
	parent  map[string]string
	members map[string][]string // root -> every id of the person
	maxIDs  int
}

func newIdentities(maxIDs int) *identities {
	return &identities{parent: map[string]string{}, members: map[string][]string{}, maxIDs: maxIDs}
}

// PersonLink says which person a customer key belongs to.
type PersonLink struct {
	CustomerKey string
	PersonID    string
}

// person returns the links of every id of the person that id belongs to. The person's id is its
// smallest user id, or its smallest anonymous id when it has none, so it does not depend on the
// order in which links arrived.
func (g *identities) person(id string) []PersonLink {
	ids := g.members[g.find(id)]
	best := ""
	for _, m := range ids {
		if best == "" || m[0] == 'u' && (best[0] != 'u' || m < best) || m[0] == best[0] && m < best {
			best = m
		}
	}
	links := make([]PersonLink, 0, len(ids))
	seen := map[string]bool{}
	for _, m := range ids {
		if key := m[2:]; !seen[key] { // an alias links both readings of its previousId
			seen[key] = true
			links = append(links, PersonLink{CustomerKey: key, PersonID: best[2:]})
		}
	}
	return links
}

func (g *identities) find(id string) string {
	root := id
	for {
		p, ok := g.parent[root]
		if !ok || p == root {
			break
		}
		root = p
	}
	for id != root { // path compression
		next := g.parent[id]
		g.parent[id] = root
		id = next
	}
	return root
}

// linkResult says what a link did.
type linkResult int

const (
	linkKnown      linkResult = iota // both ids were already one person
	linkMerged                       // two persons became one
	linkRefused                      // the merged person would exceed maxIDs
	linkTwoUserIDs                   // both persons have a userId: distinct users never merge implicitly
)

// link joins the persons of a and b. Only an explicit link (an alias call, or a link stored
// earlier) joins two persons that both have a userId: an anonymousId shared by two userIds is a
// shared device (a family laptop, a shop's tablet), not one person. That is PostHog's rule (it
// refuses to merge two identified persons) and Segment's default identity limit (one user_id per
// profile); Mixpanel asks clients to reset the device instead.
func (g *identities) link(a, b string, explicit bool) linkResult {
	for _, id := range []string{a, b} {
		if _, ok := g.parent[id]; !ok {
			g.parent[id], g.members[id] = id, []string{id}
		}
	}
	ra, rb := g.find(a), g.find(b)
	if ra == rb {
		return linkKnown
	}
	if !explicit && g.hasUserID(ra) && g.hasUserID(rb) {
		return linkTwoUserIDs
	}
	if len(g.members[ra])+len(g.members[rb]) > g.maxIDs {
		return linkRefused
	}
	if len(g.members[ra]) < len(g.members[rb]) {
		ra, rb = rb, ra
	}
	g.parent[rb] = ra
	g.members[ra] = append(g.members[ra], g.members[rb]...)
	delete(g.members, rb)
	return linkMerged
}

// hasUserID reports whether the person rooted at root has a userId.
func (g *identities) hasUserID(root string) bool {
	return slices.ContainsFunc(g.members[root], func(id string) bool { return strings.HasPrefix(id, "u:") })
}

// linkPairs returns the ids an event links, in pairs: its userId with its anonymousId, and an
// alias's previousId with its userId (an alias is explicit: see link).
func linkPairs(userID, anonymousID, previousID, typ string) [][2]string {
	var pairs [][2]string
	if userID != "" && anonymousID != "" {
		pairs = append(pairs, [2]string{"u:" + userID, "a:" + anonymousID})
	}
	if typ == "alias" && previousID != "" && userID != "" && previousID != userID {
		// previousId may be an anonymous id or an earlier user id; link both readings.
		pairs = append(pairs, [2]string{"u:" + userID, "a:" + previousID}, [2]string{"u:" + userID, "u:" + previousID})
	}
	return pairs
}
