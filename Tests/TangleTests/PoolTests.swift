import XCTest
@testable import Tangle

func poolTestFunctions() {}
