# Project-wide warning and sanitizer flags, applied to every attnc target through attnc_options.
add_library(attnc_options INTERFACE)
target_compile_options(attnc_options INTERFACE -Wall -Wextra -Wno-unused-parameter)
target_include_directories(attnc_options INTERFACE ${PROJECT_SOURCE_DIR})
if(ATTNC_SANITIZE)
  target_compile_options(attnc_options INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                 -fno-sanitize-recover=undefined)
  target_link_options(attnc_options INTERFACE -fsanitize=address,undefined)
endif()
