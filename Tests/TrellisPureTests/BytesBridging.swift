import Foundation
import TrellisCNI
@testable import TrellisIPAM

// The product code speaks [UInt8] (the plugin links no Foundation, to stay small and fast);
// the tests read and write JSON with Foundation. These overloads bridge the two.

extension NetConf {
    static func parse(_ data: Data) throws(CNIError) -> NetConf { try parse([UInt8](data)) }
}

extension CNIResult {
    static func decode(_ data: Data, version: String) throws(CNIError) -> CNIResult {
        try decode([UInt8](data), version: version)
    }
}

extension StateFiles {
    static func decode(_ data: Data, path: String) throws(IPAMError) -> IPAMState {
        try decode([UInt8](data), path: path)
    }
}

extension JSONSerialization {
    static func jsonObject(with bytes: [UInt8], options: ReadingOptions = []) throws -> Any {
        try jsonObject(with: Data(bytes), options: options)
    }
}

extension String {
    init?(data bytes: [UInt8], encoding: String.Encoding) {
        self.init(data: Data(bytes), encoding: encoding)
    }
}
