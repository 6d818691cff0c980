package sessionize

// identities is a union-find over customer ids ("u:" user ids, "a:" anonymous ids): identify and
// alias calls, and any event carrying both ids, link two ids into one person. A person holds at
// most maxIDs ids; a link that would make one larger is refused (a runaway merge: a shared kiosk,
// a bad integration), never silently merging everyone.
type identities struct {
	parent map[string]string
	size   map[string]int
	maxIDs int
}

func newIdentities(maxIDs int) *identities {
	return &identities{parent: map[string]string{}, size: map[string]int{}, maxIDs: maxIDs}
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
	linkKnown   linkResult = iota // both ids were already one person
	linkMerged                    // two persons became one
	linkRefused                   // the merged person would exceed maxIDs
)

// link joins the persons of a and b.
func (g *identities) link(a, b string) linkResult {
	ra, rb := g.find(a), g.find(b)
	if ra == rb {
		if _, ok := g.parent[a]; !ok {
			g.parent[a], g.size[a] = a, 1
		}
		return linkKnown
	}
	sa, sb := max(g.size[ra], 1), max(g.size[rb], 1)
	if sa+sb > g.maxIDs {
		return linkRefused
	}
	if sa < sb {
		ra, rb, sa, sb = rb, ra, sb, sa
	}
	g.parent[ra], g.parent[rb] = ra, ra
	g.size[ra] = sa + sb
	delete(g.size, rb)
	return linkMerged
}

// ids returns the ids an event links, in pairs: its userId with its anonymousId, and an alias's
// previousId with its userId.
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
