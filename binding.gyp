{
  # node-gyp build of the same sources as CMakeLists.txt. Each ISA kernel file is its own static
  # library with its own flags, linked into the addon; dispatch.cpp picks one at run time.
  "variables": {
    "bort_cflags": ["-O3", "-ffp-contract=fast", "-std=c++17", "-fPIC"]
  },
  "target_defaults": {
    "cflags!": ["-O2", "-fno-exceptions"],
    "cflags_cc!": ["-O2", "-fno-exceptions", "-std=gnu++14", "-std=gnu++17"],
    "cflags_cc": ["<@(bort_cflags)", "-fexceptions"],
    "include_dirs": ["native/src"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "OTHER_CPLUSPLUSFLAGS": ["-O3", "-ffp-contract=fast"]
    }
  },
  "targets": [
    {
      "target_name": "bort_portable",
      "type": "static_library",
      "sources": [
        "native/src/dispatch.cpp",
        "native/src/pack.cpp",
        "native/src/pool.cpp",
        "native/src/encoder.cpp",
        "native/src/kernels_scalar.cpp",
        "native/src/qpack.cpp",
        "native/src/qdispatch.cpp",
        "native/src/qgemm_scalar.cpp",
        "native/src/qlinear.cpp",
        "native/src/qattention.cpp",
        "native/src/train/train_dispatch.cpp",
        "native/src/train/trainer.cpp",
        "native/src/train/cls_head.cpp",
        "native/src/train/attention.cpp",
        "native/src/encoder_packed.cpp",
        "native/src/output_pool.cpp",
        "native/src/packing.cpp"
      ]
    },
    {
      "target_name": "bort_native",
      "sources": ["native/src/addon.cpp", "native/src/train/train_addon.cpp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_CPP_EXCEPTIONS_ALL"],
      "dependencies": ["bort_portable"],
      "conditions": [
        ["target_arch=='x64'", { "dependencies": ["bort_avx2", "bort_avx512", "bort_qavx2", "bort_qavxvnni", "bort_qavx512vnni"] }],
        ["target_arch=='arm64'", { "dependencies": ["bort_neon", "bort_qneon", "bort_qneondot"] }]
      ],
      "libraries": ["-lpthread"]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "bort_avx2",
          "type": "static_library",
          "sources": ["native/src/kernels_avx2.cpp"],
          "cflags_cc": ["-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-ffp-contract=fast", "-mavx2", "-mfma"] }
        },
        {
          "target_name": "bort_avx512",
          "type": "static_library",
          "sources": ["native/src/kernels_avx512.cpp"],
          "cflags_cc": ["-mavx512f", "-mavx2", "-mfma", "-Wno-uninitialized", "-Wno-maybe-uninitialized"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-ffp-contract=fast", "-mavx512f", "-mavx2", "-mfma"] }
        },
        {
          "target_name": "bort_qavx2",
          "type": "static_library",
          "sources": ["native/src/qgemm_avx2.cpp"],
          "cflags_cc": ["-mavx2"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-mavx2"] }
        },
        {
          "target_name": "bort_qavxvnni",
          "type": "static_library",
          "sources": ["native/src/qgemm_avxvnni.cpp"],
          "cflags_cc": ["-mavx2", "-mavxvnni"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-mavx2", "-mavxvnni"] }
        },
        {
          "target_name": "bort_qavx512vnni",
          "type": "static_library",
          "sources": ["native/src/qgemm_avx512vnni.cpp"],
          "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vnni", "-mavx2", "-Wno-uninitialized", "-Wno-maybe-uninitialized"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-mavx512f", "-mavx512bw", "-mavx512vnni", "-mavx2"] }
        }
      ]
    }],
    ["target_arch=='arm64'", {
      "targets": [
        {
          "target_name": "bort_neon",
          "type": "static_library",
          "sources": ["native/src/kernels_neon.cpp"]
        },
        {
          "target_name": "bort_qneon",
          "type": "static_library",
          "sources": ["native/src/qgemm_neon.cpp"]
        },
        {
          "target_name": "bort_qneondot",
          "type": "static_library",
          "sources": ["native/src/qgemm_neondot.cpp"],
          "cflags_cc": ["-march=armv8.2-a+dotprod"],
          "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-march=armv8.2-a+dotprod"] }
        }
      ]
    }]
  ]
}
