//! chonkle.zig: everything a Zig codec needs to meet the chonkle Wasm codec contract.
//!
//! Import it from the codec's root file and reference it once (`comptime { _ = chonkle; }`)
//! so its exports are emitted: alloc, dealloc, last_error and set_output_limit. Then export `encode` and/or
//! `decode` with the contract's signature, building results with `result` and failures with
//! `fail`, and reading the configuration with `configInt`. See docs/wasm-codec-contract.md.
const std = @import("std");

/// The allocator behind alloc/dealloc: buffers returned to the host must come from it.
pub const allocator = std.heap.wasm_allocator;

/// The host frees with the size it was given, so every allocation is at least one byte
/// (an empty output is a 1-byte buffer reported with length 0).
fn backing(size: usize) usize {
    return @max(size, 1);
}

export fn alloc(size: i32) i32 {
    if (size < 0) return 0;
    const bytes = allocator.alloc(u8, backing(@intCast(size))) catch return 0;
    return @intCast(@intFromPtr(bytes.ptr));
}

export fn dealloc(ptr: i32, size: i32) void {
    if (ptr == 0 or size < 0) return;
    const base: [*]u8 = @ptrFromInt(@as(usize, @intCast(ptr)));
    allocator.free(base[0..backing(@intCast(size))]);
}

var error_text: [512]u8 = undefined;
var error_length: usize = 0;

export fn last_error() i64 {
    if (error_length == 0) return 0;
    return pack(@intFromPtr(&error_text), error_length);
}

fn pack(ptr: usize, len: usize) i64 {
    return @bitCast((@as(u64, ptr) << 32) | @as(u64, len));
}

/// Hand `output` (from `allocator`, exactly output.len bytes unless empty) to the host.
pub fn result(output: []u8) i64 {
    return pack(@intFromPtr(output.ptr), output.len);
}

/// Allocate an output buffer the host can free.
pub fn allocOutput(len: usize) ![]u8 {
    const bytes = try allocator.alloc(u8, backing(len));
    return bytes[0..len];
}

/// The most bytes one call may return, set by the host (CHONKLE_MAX_OUTPUT, 1 GiB by default)
/// right after instantiation. Check output sizes against it before allocating.
pub var output_limit: u32 = 1 << 30;

export fn set_output_limit(limit: i32) void {
    output_limit = @bitCast(limit);
}

/// The output would pass `output_limit`: record it and return the limit failure value
/// (pointer 0, length 1), which the host reports as LimitExceeded.
pub fn failLimit(size: u64) i64 {
    _ = fail("output of {d} bytes would exceed the limit of {d} bytes", .{ size, output_limit });
    return 1;
}

/// Record why the call failed and return the failure value (pointer 0, length 0).
pub fn fail(comptime format: []const u8, args: anytype) i64 {
    const written = std.fmt.bufPrint(&error_text, format, args) catch error_text[0..];
    error_length = written.len;
    return 0;
}

pub const ConfigError = error{InvalidConfiguration};

/// Integer field `key` of the JSON configuration, or `default` when absent (null: required).
/// On a bad value the reason is recorded (as by `fail`) and InvalidConfiguration returned.
pub fn configInt(config: []const u8, key: []const u8, default: ?i64, min: i64, max: i64) ConfigError!i64 {
    var arena = std.heap.ArenaAllocator.init(allocator);
    defer arena.deinit();
    const parsed = std.json.parseFromSliceLeaky(std.json.Value, arena.allocator(), config, .{}) catch {
        _ = fail("configuration is not valid JSON", .{});
        return error.InvalidConfiguration;
    };
    if (parsed != .object) {
        _ = fail("configuration is not a JSON object", .{});
        return error.InvalidConfiguration;
    }
    const value = parsed.object.get(key) orelse {
        if (default) |d| return d;
        _ = fail("configuration lacks \"{s}\"", .{key});
        return error.InvalidConfiguration;
    };
    if (value != .integer or value.integer < min or value.integer > max) {
        _ = fail("configuration \"{s}\" must be an integer from {d} to {d}", .{ key, min, max });
        return error.InvalidConfiguration;
    }
    return value.integer;
}

/// The input and configuration the host passed, as slices.
pub fn slice(ptr: i32, len: i32) []const u8 {
    if (len <= 0) return &[_]u8{};
    const base: [*]const u8 = @ptrFromInt(@as(usize, @intCast(ptr)));
    return base[0..@intCast(len)];
}
