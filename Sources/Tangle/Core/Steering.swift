import CTangleSupport

/// Directed replay (`tangle confirm`): called first thing by every acquire and blocking call.
///
/// Without a plan (TANGLE_STEER unset, the normal case) this is one load of a C global set once by
/// a constructor before main, and a branch that is never taken: the acquire and wait paths keep
/// their speed (`tangle bench runtime`). With a plan, `tangle_steer_arrive` (C, out of line) walks
/// the caller's stack and pauses, bounded, when it is one of the predicted finding's points (see
/// steer_support.h).
@inline(__always)
func _steer() {
    if tangle_steer_active != 0 { tangle_steer_arrive() }
}
