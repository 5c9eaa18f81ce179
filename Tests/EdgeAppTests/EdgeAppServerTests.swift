import Foundation
import XCTest
import EdgeMeterHTTP
import EdgeMeterProbes
@testable import EdgeApp

/// Real Hummingbird servers on 127.0.0.1 (port 0), called with edgemeter's own HTTP client.
final class EdgeAppServerTests: XCTestCase {
    func call(_ port: Int, _ method: String, _ path: String, _ body: String = "") async throws -> HTTPResponseInfo {
        let target = HTTPTarget(host: "127.0.0.1", port: port, path: path)
        let x = await HTTPProbe.exchange(target, request: HTTPRequestSpec(method: method, path: path, headers: [("Content-Type", "application/json")],
                                                                           body: Array(body.utf8)), timeout: .seconds(5))
        if let e = x.error { throw e }
        return x.response!
    }

    func json(_ r: HTTPResponseInfo) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(r.bodyText.utf8))) as? [String: Any] ?? [:]
    }

    func testCloudDatabaseStatusAndUpdates() async throws {
        let db = try await EdgeAppServer.startCloudDB(port: 0)
        let s = try await call(db.port, "GET", "/status")
        XCTAssertEqual(s.status, 200)
        XCTAssertEqual(json(s)["speed_limitation"] as? Double, 22.36)
        XCTAssertEqual(json(s)["crosswalk"] as? String, "free")
        XCTAssertEqual(json(s)["occupation"] as? Double, 90)
        XCTAssertEqual(json(s)["intersection"] as? String, "free")

        let u = try await call(db.port, "PUT", "/status", #"{"crosswalk": "occupied", "occupation": 40}"#)
        XCTAssertEqual(u.status, 200)
        XCTAssertEqual(u.bodyText, #"{"message":"update successful"}"# + "\n")
        let after = json(try await call(db.port, "GET", "/status"))
        XCTAssertEqual(after["crosswalk"] as? String, "occupied")
        XCTAssertEqual(after["occupation"] as? Double, 40)
        let post = try await call(db.port, "POST", "/status", #"{"speed_limitation": 13.9}"#)
        XCTAssertEqual(post.status, 200)
        let posted = try await call(db.port, "GET", "/status")
        XCTAssertEqual(json(posted)["speed_limitation"] as? Double, 13.9)

        // Bad updates: 400 naming the field, and nothing changed.
        let bad = try await call(db.port, "PUT", "/status", #"{"occupation": 140, "crosswalk": "free"}"#)
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual(json(bad)["field"] as? String, "occupation")
        XCTAssertEqual(json(bad)["error"] as? String, "occupation must be a percentage from 0 to 100, such as 90; got 140")
        let unchanged = try await call(db.port, "GET", "/status")
        XCTAssertEqual(json(unchanged)["crosswalk"] as? String, "occupied", "a refused update changes nothing")
        let unknown = try await call(db.port, "PUT", "/status", #"{"weather": "rain"}"#)
        XCTAssertEqual(json(unknown)["field"] as? String, "weather")
        let notJSON = try await call(db.port, "PUT", "/status", "crosswalk=free")
        XCTAssertEqual(notJSON.status, 400)
        XCTAssertEqual(json(notJSON)["field"] as? String, "body")
        let boolSpeed = try await call(db.port, "PUT", "/status", #"{"speed_limitation": true}"#)
        XCTAssertEqual(json(boolSpeed)["field"] as? String, "speed_limitation", "true is not a speed")
        await db.stop()
    }

    func testEdgeAppAdvisesFromTheCloudsRoadStatusAndNamesItsNode() async throws {
        let db = try await EdgeAppServer.startCloudDB(port: 0)
        let edge = try await EdgeAppServer.startEdgeApp(port: 0, node: "node_1", cloud: HTTPTarget(host: "127.0.0.1", port: db.port, path: "/status"),
                                                        refresh: .milliseconds(50))
        // The lab's answer: close ahead (< 58.07 m stopping distance at 22.36 m/s), 90 % occupation.
        let r = try await call(edge.port, "POST", "/drive", #"{"front_distance": 30, "rear_distance": 50}"#)
        XCTAssertEqual(r.status, 200, r.bodyText)
        XCTAssertEqual(r.header(edgeNodeHeader), "node_1")
        XCTAssertEqual(r.bodyText, #"{"cloud_response":"","edge_response":{"acceleration":"brake","steering":"be careful while steering"},"node":"node_1"}"# + "\n")
        let far = json(try await call(edge.port, "POST", "/drive", #"{"front_distance": 100, "rear_distance": 50}"#))
        XCTAssertEqual((far["edge_response"] as? [String: String])?["acceleration"], "keep going")

        // An update in the cloud reaches the edge's answers within its refresh.
        let put = try await call(db.port, "PUT", "/status", #"{"crosswalk": "occupied", "occupation": 10}"#)
        XCTAssertEqual(put.status, 200)
        var advice: [String: String]?
        for _ in 0..<100 {
            advice = json(try await call(edge.port, "POST", "/drive", #"{"front_distance": 100, "rear_distance": 50}"#))["edge_response"] as? [String: String]
            if advice?["acceleration"] == "brake" { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertEqual(advice, ["acceleration": "brake", "steering": "steer normally"], "100 m < 2 × 58.07 m with the crosswalk occupied")

        // Bad requests: 400 naming the field, the node still named.
        let missing = try await call(edge.port, "POST", "/drive", #"{"front_distance": 30}"#)
        XCTAssertEqual(missing.status, 400)
        XCTAssertEqual(missing.header(edgeNodeHeader), "node_1")
        XCTAssertEqual(json(missing)["field"] as? String, "rear_distance")
        XCTAssertEqual(json(missing)["error"] as? String, #"rear_distance is missing; send {"front_distance": METRES, "rear_distance": METRES}"#)
        let negative = try await call(edge.port, "POST", "/drive", #"{"front_distance": -3, "rear_distance": 5}"#)
        XCTAssertEqual(json(negative)["field"] as? String, "front_distance")
        let text = try await call(edge.port, "POST", "/drive", #"{"front_distance": "near", "rear_distance": 5}"#)
        XCTAssertEqual(json(text)["error"] as? String, "front_distance must be a number of metres ≥ 0; got near")
        let garbage = try await call(edge.port, "POST", "/drive", "{front")
        XCTAssertEqual(garbage.status, 400)
        XCTAssertEqual(json(garbage)["field"] as? String, "body")
        await edge.stop()
        await db.stop()
    }

    func testEdgeAppWithoutItsCloudAnswers503NamingIt() async throws {
        // A port nothing listens on: take one from a server and stop it.
        let gone = try await EdgeAppServer.startCloudDB(port: 0)
        let port = gone.port
        await gone.stop()
        let edge = try await EdgeAppServer.startEdgeApp(port: 0, node: "node_2", cloud: HTTPTarget(host: "127.0.0.1", port: port, path: "/status"),
                                                        refresh: .seconds(10))
        let r = try await call(edge.port, "POST", "/drive", #"{"front_distance": 30, "rear_distance": 50}"#)
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(json(r)["field"] as? String, "cloud")
        XCTAssertEqual(json(r)["node"] as? String, "node_2")
        XCTAssertTrue((json(r)["error"] as? String ?? "").contains("127.0.0.1:\(port)/status"), r.bodyText)
        await edge.stop()
    }

    func testTheDecisionRule() {
        XCTAssertEqual(DrivingAdvice.stoppingDistance(speed: 22.36), 22.36 + 22.36 * 22.36 / 14, accuracy: 1e-9)
        let road = RoadStatus(occupation: 10)
        XCTAssertEqual(DrivingAdvice.advise(VehicleReport(frontDistance: 58.0, rearDistance: 30), road: road).acceleration, "brake")
        XCTAssertEqual(DrivingAdvice.advise(VehicleReport(frontDistance: 58.1, rearDistance: 30), road: road).acceleration, "keep going")
        XCTAssertEqual(DrivingAdvice.advise(VehicleReport(frontDistance: 100, rearDistance: 22), road: road).steering, "be careful while steering")
        XCTAssertEqual(DrivingAdvice.advise(VehicleReport(frontDistance: 100, rearDistance: 23), road: road).steering, "steer normally")
        var busy = road
        busy.intersection = "occupied"
        XCTAssertEqual(DrivingAdvice.advise(VehicleReport(frontDistance: 116, rearDistance: 30), road: busy).acceleration, "brake")
        XCTAssertEqual(DrivingAdvice.advise(VehicleReport(frontDistance: 117, rearDistance: 30), road: busy).acceleration, "keep going")
    }
}
