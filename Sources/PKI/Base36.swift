// Base 36 of a big-endian unsigned integer, as swarm writes the two halves of a join token.
// Hand-written because it is twenty lines: long division of a byte string by 36, which no
// package this project uses offers, and a big-integer package would be all cost here.

/// Digits 0–9 then a–z, most significant first, left-padded with zeros to a fixed width.
enum Base36 {
    private static let digits = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)

    /// `bytes` as a big-endian number in base 36, zero-padded to `width` characters.
    static func encode(_ bytes: [UInt8], width: Int) -> String {
        var number = bytes
        var out: [UInt8] = []
        while number.contains(where: { $0 != 0 }) {
            var remainder = 0
            for index in number.indices {
                let value = remainder << 8 | Int(number[index])
                number[index] = UInt8(value / 36)
                remainder = value % 36
            }
            out.append(digits[remainder])
        }
        precondition(out.count <= width, "\(bytes.count) bytes do not fit \(width) base-36 digits")
        out += Array(repeating: UInt8(ascii: "0"), count: width - out.count)
        return String(decoding: out.reversed(), as: UTF8.self)
    }

    /// The `count` big-endian bytes whose base-36 form is `text`; nil for a bad digit or a
    /// number that does not fit.
    static func decode(_ text: Substring, count: Int) -> [UInt8]? {
        var number = [UInt8](repeating: 0, count: count)
        for character in text.utf8 {
            guard let digit = digits.firstIndex(of: character) else { return nil }
            var carry = digit
            for index in number.indices.reversed() {
                let value = Int(number[index]) * 36 + carry
                number[index] = UInt8(value & 0xFF)
                carry = value >> 8
            }
            guard carry == 0 else { return nil }
        }
        return number
    }
}

/// Object and node IDs as swarm makes them: 128 random bits in 25 base-36 characters.
public enum RandomID {
    /// A new ID.
    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        return Base36.encode((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }, width: 25)
    }
}
