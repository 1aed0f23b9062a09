// A set that can also hand out a uniformly random element in O(1): the engine picks random
// gossip targets and probe helpers many times a second among up to thousands of members.

/// A set with O(1) insert, remove, membership and random choice.
struct IndexedSet<Element: Hashable> {
    private(set) var elements: [Element] = []
    private var positions: [Element: Int] = [:]

    var count: Int { elements.count }
    var isEmpty: Bool { elements.isEmpty }

    func contains(_ element: Element) -> Bool { positions[element] != nil }

    /// Inserts `element`; true when it was not there.
    @discardableResult
    mutating func insert(_ element: Element) -> Bool {
        guard positions[element] == nil else { return false }
        positions[element] = elements.count
        elements.append(element)
        return true
    }

    /// Removes `element` by moving the last element into its place.
    @discardableResult
    mutating func remove(_ element: Element) -> Bool {
        guard let position = positions.removeValue(forKey: element) else { return false }
        let last = elements.removeLast()
        if position < elements.count {
            elements[position] = last
            positions[last] = position
        }
        return true
    }

    /// Up to `count` distinct random elements that satisfy `isWanted`, by rejection sampling
    /// (bounded: at most 4 × count + 8 draws, so a mostly-unwanted set costs no more).
    func randomElements(
        _ count: Int, using random: inout some RandomNumberGenerator, where isWanted: (Element) -> Bool
    ) -> [Element] {
        guard !elements.isEmpty, count > 0 else { return [] }
        if elements.count <= count * 2 {
            return Array(elements.filter(isWanted).shuffled(using: &random).prefix(count))
        }
        var chosen: [Element] = []
        var draws = 0
        while chosen.count < count && draws < 4 * count + 8 {
            draws += 1
            let candidate = elements[Int.random(in: 0..<elements.count, using: &random)]
            if isWanted(candidate) && !chosen.contains(candidate) { chosen.append(candidate) }
        }
        return chosen
    }
}
