import Foundation

/// The module's one error type: a request field or a setting that is wrong, with what to send instead.
public struct EdgeAppError: Error, CustomStringConvertible, Equatable {
    public var description: String
    /// The JSON field or flag at fault.
    public var field: String
    public init(field: String, _ description: String) { (self.field, self.description) = (field, description) }
}

/// The road status the cloud database keeps (the lab's values by default).
public struct RoadStatus: Codable, Sendable, Equatable {
    /// Speed limit in metres per second (22.36 m/s = 50 mph = 80.5 km/h).
    public var speedLimitation: Double
    /// "free" or "occupied".
    public var crosswalk: String
    /// Road occupation in percent, 0-100.
    public var occupation: Double
    /// "free" or "occupied".
    public var intersection: String

    public init(speedLimitation: Double = 22.36, crosswalk: String = "free", occupation: Double = 90, intersection: String = "free") {
        (self.speedLimitation, self.crosswalk, self.occupation, self.intersection) = (speedLimitation, crosswalk, occupation, intersection)
    }

    enum CodingKeys: String, CodingKey {
        case speedLimitation = "speed_limitation", crosswalk, occupation, intersection
    }

    static let places = ["free", "occupied"]

    /// Applies the fields present in a JSON object (an update), checking each; unknown fields are refused.
    public func updated(with object: Any) throws -> RoadStatus {
        guard let dict = object as? [String: Any] else {
            throw EdgeAppError(field: "body", "the body must be a JSON object such as {\"crosswalk\": \"occupied\"}")
        }
        var s = self
        for key in dict.keys.sorted() {
            let value = dict[key]!
            switch key {
            case "speed_limitation":
                guard let v = number(value), v > 0, v < 200 else {
                    throw EdgeAppError(field: key, "speed_limitation must be a speed in m/s above 0 and below 200, such as 22.36; got \(value)")
                }
                s.speedLimitation = v
            case "occupation":
                guard let v = number(value), v >= 0, v <= 100 else {
                    throw EdgeAppError(field: key, "occupation must be a percentage from 0 to 100, such as 90; got \(value)")
                }
                s.occupation = v
            case "crosswalk", "intersection":
                guard let v = value as? String, Self.places.contains(v) else {
                    throw EdgeAppError(field: key, "\(key) must be \"free\" or \"occupied\"; got \(value)")
                }
                if key == "crosswalk" { s.crosswalk = v } else { s.intersection = v }
            default:
                throw EdgeAppError(field: key, "unknown field \"\(key)\"; the road status has speed_limitation, crosswalk, occupation, intersection")
            }
        }
        return s
    }
}

/// A finite JSON number (not a Bool, which JSONSerialization also hands out as NSNumber).
func number(_ value: Any) -> Double? {
    if value is String { return nil }
    if let n = value as? NSNumber {
        if String(cString: n.objCType) == "c" { return nil }   // true / false
        return n.doubleValue.isFinite ? n.doubleValue : nil
    }
    if let d = value as? Double, d.isFinite { return d }
    if let i = value as? Int { return Double(i) }
    return nil
}

/// What the vehicle sends: distances to the nearest object ahead and behind, in metres.
public struct VehicleReport: Sendable, Equatable {
    public var frontDistance: Double
    public var rearDistance: Double

    public init(frontDistance: Double, rearDistance: Double) { (self.frontDistance, self.rearDistance) = (frontDistance, rearDistance) }

    /// Parses `{"front_distance": 30, "rear_distance": 12.5}`; every problem names its field.
    public init(json data: Data) throws {
        let example = "send {\"front_distance\": METRES, \"rear_distance\": METRES}"
        guard let object = try? JSONSerialization.jsonObject(with: data), let dict = object as? [String: Any] else {
            throw EdgeAppError(field: "body", "the body is not a JSON object; \(example)")
        }
        func distance(_ key: String) throws -> Double {
            guard let raw = dict[key] else { throw EdgeAppError(field: key, "\(key) is missing; \(example)") }
            guard let v = number(raw), v >= 0 else {
                throw EdgeAppError(field: key, "\(key) must be a number of metres ≥ 0; got \(raw)")
            }
            return v
        }
        self.init(frontDistance: try distance("front_distance"), rearDistance: try distance("rear_distance"))
    }
}

/// The edge's answer: what to do now.
public struct DrivingAdvice: Sendable, Equatable {
    /// "brake" or "keep going".
    public var acceleration: String
    /// "be careful while steering" or "steer normally".
    public var steering: String

    /// Reaction time and deceleration of the stopping-distance rule.
    public static let reactionSeconds = 1.0
    public static let decelerationMetresPerSecond2 = 7.0

    /// Distance in metres a vehicle at `speed` m/s needs to stop: reaction distance plus braking
    /// distance, `v·1 s + v² / (2 · 7 m/s²)` (58.07 m at 22.36 m/s).
    public static func stoppingDistance(speed v: Double) -> Double {
        v * reactionSeconds + v * v / (2 * decelerationMetresPerSecond2)
    }

    /// The rule:
    /// - brake when the front distance is below the stopping distance at the speed limit, or below
    ///   twice that distance while the crosswalk or the intersection is occupied; keep going otherwise;
    /// - be careful while steering when the rear distance is below one second at the speed limit
    ///   (a vehicle close behind) or the occupation is 80 % or more; steer normally otherwise.
    public static func advise(_ r: VehicleReport, road: RoadStatus) -> DrivingAdvice {
        let stop = stoppingDistance(speed: road.speedLimitation)
        let obstacle = road.crosswalk != "free" || road.intersection != "free"
        let brake = r.frontDistance < stop || (obstacle && r.frontDistance < 2 * stop)
        let careful = r.rearDistance < road.speedLimitation * reactionSeconds || road.occupation >= 80
        return DrivingAdvice(acceleration: brake ? "brake" : "keep going", steering: careful ? "be careful while steering" : "steer normally")
    }
}
